/* Array kernels for the ops whose NumPy code needs several passes (and temporaries) for
 * what one loop does: max-pool over tiling windows, forward and backward, and ReLU's
 * backward. An optional accelerator, like autograd/_cengine.c: built when a C compiler is
 * present; backprop runs the NumPy code in ops/conv.py and ops/activation.py when it is
 * not, when its build is stale, or when BACKPROP_PURE_PYTHON=1. That NumPy code is the
 * reference: every kernel here gives the same bits (tests/ops/test_ckernels.py).
 *
 * The arrays come in through the buffer protocol (C-contiguous, float32 'f' or float64
 * 'd'; the argmax int16 'h'), already allocated by the caller, so this file needs no NumPy
 * headers. The loops run without the GIL.
 *
 * max_pool2d_tiles(x, out, arg, planes, h, w, kh, kw, ho, wo)
 *     x: (planes, h, w); out and arg (or None): (planes, ho, wo). Window (a, b) covers
 *     rows a·kh .. a·kh + kh - 1 and columns b·kw .. b·kw + kw - 1 (stride = kernel, no
 *     padding or dilation). out is the running np.maximum over the offsets k = i·kw + j
 *     in order; arg the first k equal to it (the first NaN where it is NaN).
 * max_pool2d_tiles_backward(g, arg, dx, planes, h, w, kh, kw, ho, wo)
 *     dx (planes, h, w) gets g + 0.0 at each window's argmax and +0.0 everywhere else.
 * relu_backward(g, out, dx, n): dx = g · (out != 0), n elements.
 * sum_pass(x, adds, n, terms) -> (Σx, Σx², Σ|x|)
 *     The Monitor's read of a gradient or a layer's output (diagnostics/): the sums that
 *     `terms` asks for (1: Σx, 2: Σx², 4: Σ|x|; one of 2, 2 | 4 and 1 | 2; the others are
 *     0.0), and x added into each buffer of the tuple `adds` (in x's dtype, as
 *     np.add(s, x, out=s) adds: the noise windows' sums), in one pass over x.
 * sgd_momentum(param, buf, grad, n, lr, momentum)
 *     buf = buf·momentum + grad, param -= buf·lr: SGD's heavy-ball step, NumPy's bits.
 * adam_step(param, exp_avg, exp_avg_sq, grad, n, weight, beta2, step_size, bc2_sqrt, eps)
 *     Adam's update without amsgrad (optim/adam.py), NumPy's bits, in one pass.
 * copy_pass(src, dst, subtract, n) -> Σdst²
 *     dst = src, or dst = src - dst, and the new dst's squared norm, in one pass (the
 *     Monitor's copy of the weights before an update, and the change it made).
 * The arrays written get NumPy's bits; the sums are added in a fixed order of their own
 * (below; tests/ops/test_ckernels.py repeats it in NumPy), so they agree with NumPy's
 * own sums to the dtype's rounding.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    Py_buffer view;
    int held;
} Buf;

static void release(Buf *b)
{
    if (b->held) {
        PyBuffer_Release(&b->view);
        b->held = 0;
    }
}

/* A C-contiguous buffer of `count` items of one of `formats` (writable if asked). */
static int get(PyObject *obj, Buf *b, const char *formats, Py_ssize_t count, int writable,
               const char *what)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &b->view, flags) < 0)
        return -1;
    b->held = 1;
    const char *f = b->view.format ? b->view.format : "B";
    if (f[0] == '=' || f[0] == '<' || f[0] == '@')
        f++;
    if (f[0] == '\0' || f[1] != '\0' || strchr(formats, f[0]) == NULL) {
        PyErr_Format(PyExc_TypeError, "_ckernels: %s has format '%s', expected one of '%s'",
                     what, b->view.format, formats);
        return -1;
    }
    if (b->view.len != count * b->view.itemsize) {
        PyErr_Format(PyExc_ValueError, "_ckernels: %s holds %zd items, expected %zd", what,
                     b->view.len / b->view.itemsize, count);
        return -1;
    }
    return 0;
}

static char format_of(Buf *b)
{
    const char *f = b->view.format;
    return (f[0] == '=' || f[0] == '<' || f[0] == '@') ? f[1] : f[0];
}

/* The format every one of `count` buffers has ('f' or 'd'), or 0 with a TypeError
 * "_ckernels: NAMES differ in dtype" where they differ. */
static char same_format(Buf *const bufs[], int count, const char *names)
{
    char f = format_of(bufs[0]);
    for (int i = 1; i < count; i++)
        if (format_of(bufs[i]) != f) {
            PyErr_Format(PyExc_TypeError, "_ckernels: %s differ in dtype", names);
            return 0;
        }
    return f;
}

/* np.maximum(a, b): a when a >= b or a is NaN, else b (so NaN wins, and a tie keeps a). */
#define NP_MAX(a, b) (((a) >= (b) || (a) != (a)) ? (a) : (b))

/* One window: its maximum as np.maximum's running chain gives it, and the first offset
 * equal to it (or, where it is NaN, the first NaN). Written so that the usual case runs
 * as selects (maxss, blends) with no data-dependent branch: `v > best ? v : best` is the
 * chain wherever the window holds no NaN (a tie keeps the earlier value, as
 * np.maximum(a, b) keeps a when a >= b); a window with a NaN, rare, redoes the chain
 * exactly, so that its first NaN (and that NaN's bits) wins. */
#define POOL_WINDOW(T, NAME)                                                               \
static inline __attribute__((always_inline)) T NAME(const T *corner, Py_ssize_t w,        \
                                                   Py_ssize_t kh, Py_ssize_t kw,           \
                                                   int16_t *arg)                           \
{                                                                                          \
    T best = corner[0];                                                                    \
    int nan = best != best;                                                                \
    for (Py_ssize_t i = 0; i < kh; i++)                                                    \
        for (Py_ssize_t j = 0; j < kw; j++) {                                              \
            T v = corner[i * w + j];                                                       \
            nan |= v != v;                                                                 \
            best = v > best ? v : best;                                                    \
        }                                                                                  \
    if (nan) {                                                                             \
        best = corner[0];                                                                  \
        for (Py_ssize_t i = 0; i < kh; i++)                                                \
            for (Py_ssize_t j = (i == 0); j < kw; j++)                                     \
                best = NP_MAX(best, corner[i * w + j]);                                    \
    }                                                                                      \
    if (arg != NULL) {  /* walk back from the last offset, keeping each match */           \
        int k = 0;                                                                         \
        if (!nan) {                                                                        \
            for (Py_ssize_t i = kh - 1; i >= 0; i--)                                       \
                for (Py_ssize_t j = kw - 1; j >= 0; j--)                                   \
                    k = corner[i * w + j] == best ? (int)(i * kw + j) : k;                 \
        } else {                                                                           \
            for (Py_ssize_t i = kh - 1; i >= 0; i--)                                       \
                for (Py_ssize_t j = kw - 1; j >= 0; j--)                                   \
                    k = corner[i * w + j] != corner[i * w + j] ? (int)(i * kw + j) : k;    \
        }                                                                                  \
        *arg = (int16_t)k;                                                                 \
    }                                                                                      \
    return best;                                                                           \
}

POOL_WINDOW(float, window_f)
POOL_WINDOW(double, window_d)

/* The planes, for kernel (KH, KW): constants for the usual 2x2, so the window's loops
 * unroll. */
#define POOL_PLANES(T, WINDOW, KH, KW)                                                     \
    for (Py_ssize_t p = 0; p < planes; p++) {                                              \
        const T *plane = x + p * h * w;                                                    \
        for (Py_ssize_t a = 0; a < ho; a++) {                                              \
            const T *top = plane + a * (KH) * w;                                           \
            for (Py_ssize_t b = 0; b < wo; b++) {                                          \
                *out++ = WINDOW(top + b * (KW), w, KH, KW, arg);                           \
                if (arg != NULL)                                                           \
                    arg++;                                                                 \
            }                                                                              \
        }                                                                                  \
    }

#define POOL_FORWARD(T, NAME, WINDOW)                                                      \
static void NAME(const T *x, T *out, int16_t *arg, Py_ssize_t planes, Py_ssize_t h,       \
                 Py_ssize_t w, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t ho, Py_ssize_t wo)\
{                                                                                          \
    if (kh == 2 && kw == 2) {                                                              \
        POOL_PLANES(T, WINDOW, 2, 2)                                                       \
    } else {                                                                               \
        POOL_PLANES(T, WINDOW, kh, kw)                                                     \
    }                                                                                      \
}

POOL_FORWARD(float, pool_forward_f, window_f)
POOL_FORWARD(double, pool_forward_d, window_d)

#define POOL_BACKWARD(T, NAME)                                                             \
static void NAME(const T *g, const int16_t *arg, T *dx, Py_ssize_t planes, Py_ssize_t h,  \
                 Py_ssize_t w, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t ho, Py_ssize_t wo)\
{                                                                                          \
    for (Py_ssize_t p = 0; p < planes; p++) {                                              \
        T *plane = dx + p * h * w;                                                         \
        for (Py_ssize_t r = 0; r < h; r++)                                                 \
            for (Py_ssize_t c = 0; c < w; c++)                                             \
                plane[r * w + c] = (T)0;                                                   \
        for (Py_ssize_t a = 0; a < ho; a++)                                                \
            for (Py_ssize_t b = 0; b < wo; b++) {                                          \
                int16_t k = *arg++;                                                        \
                /* + 0.0 turns a -0.0 gradient into +0.0, as the NumPy path's `dx += 0.0` */ \
                plane[(a * kh + k / kw) * w + b * kw + k % kw] = *g++ + (T)0;              \
            }                                                                              \
    }                                                                                      \
}

POOL_BACKWARD(float, pool_backward_f)
POOL_BACKWARD(double, pool_backward_d)

static int pool_sizes(PyObject *args, PyObject **o1, PyObject **o2, PyObject **o3,
                      Py_ssize_t s[7])
{
    if (!PyArg_ParseTuple(args, "OOOnnnnnnn", o1, o2, o3, &s[0], &s[1], &s[2], &s[3], &s[4],
                          &s[5], &s[6]))
        return -1;
    for (int i = 0; i < 7; i++)
        if (s[i] < 0 || (i >= 3 && i <= 4 && s[i] < 1)) {
            PyErr_SetString(PyExc_ValueError, "_ckernels: bad pool geometry");
            return -1;
        }
    /* planes, h, w, kh, kw, ho, wo: every window inside the plane, k fits int16 */
    if (s[5] * s[3] > s[1] || s[6] * s[4] > s[2] || s[3] * s[4] > 32767) {
        PyErr_SetString(PyExc_ValueError, "_ckernels: the windows do not tile the plane");
        return -1;
    }
    return 0;
}

static PyObject *max_pool2d_tiles(PyObject *self, PyObject *args)
{
    PyObject *xo, *oo, *ao;
    Py_ssize_t s[7];
    if (pool_sizes(args, &xo, &oo, &ao, s) < 0)
        return NULL;
    Buf x = {0}, out = {0}, arg = {0};
    PyObject *result = NULL;
    Py_ssize_t n_in = s[0] * s[1] * s[2], n_out = s[0] * s[5] * s[6];
    if (get(xo, &x, "fd", n_in, 0, "x") < 0 || get(oo, &out, "fd", n_out, 1, "out") < 0)
        goto done;
    if (!same_format((Buf *[]){&x, &out}, 2, "x and out"))
        goto done;
    if (ao != Py_None && get(ao, &arg, "h", n_out, 1, "arg") < 0)
        goto done;
    int16_t *a = arg.held ? (int16_t *)arg.view.buf : NULL;
    Py_BEGIN_ALLOW_THREADS
    if (format_of(&x) == 'f')
        pool_forward_f(x.view.buf, out.view.buf, a, s[0], s[1], s[2], s[3], s[4], s[5], s[6]);
    else
        pool_forward_d(x.view.buf, out.view.buf, a, s[0], s[1], s[2], s[3], s[4], s[5], s[6]);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    release(&x);
    release(&out);
    release(&arg);
    return result;
}

static PyObject *max_pool2d_tiles_backward(PyObject *self, PyObject *args)
{
    PyObject *go, *ao, *dxo;
    Py_ssize_t s[7];
    if (pool_sizes(args, &go, &ao, &dxo, s) < 0)
        return NULL;
    Buf g = {0}, arg = {0}, dx = {0};
    PyObject *result = NULL;
    Py_ssize_t n_in = s[0] * s[1] * s[2], n_out = s[0] * s[5] * s[6];
    if (get(go, &g, "fd", n_out, 0, "g") < 0 || get(ao, &arg, "h", n_out, 0, "arg") < 0 ||
        get(dxo, &dx, "fd", n_in, 1, "dx") < 0)
        goto done;
    if (!same_format((Buf *[]){&g, &dx}, 2, "g and dx"))
        goto done;
    const int16_t *a = arg.view.buf;
    for (Py_ssize_t i = 0; i < n_out; i++)  /* an argmax outside its window would write astray */
        if (a[i] < 0 || a[i] >= s[3] * s[4]) {
            PyErr_Format(PyExc_ValueError, "_ckernels: argmax %d outside a %zdx%zd window",
                         (int)a[i], s[3], s[4]);
            goto done;
        }
    Py_BEGIN_ALLOW_THREADS
    if (format_of(&g) == 'f')
        pool_backward_f(g.view.buf, a, dx.view.buf, s[0], s[1], s[2], s[3], s[4], s[5], s[6]);
    else
        pool_backward_d(g.view.buf, a, dx.view.buf, s[0], s[1], s[2], s[3], s[4], s[5], s[6]);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    release(&g);
    release(&arg);
    release(&dx);
    return result;
}

static PyObject *relu_backward(PyObject *self, PyObject *args)
{
    PyObject *go, *oo, *dxo;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "OOOn", &go, &oo, &dxo, &n))
        return NULL;
    Buf g = {0}, out = {0}, dx = {0};
    PyObject *result = NULL;
    if (n < 0 || get(go, &g, "fd", n, 0, "g") < 0 || get(oo, &out, "fd", n, 0, "out") < 0 ||
        get(dxo, &dx, "fd", n, 1, "dx") < 0)
        goto done;
    char f = same_format((Buf *[]){&g, &out, &dx}, 3, "g, out and dx");
    if (!f)
        goto done;
    Py_BEGIN_ALLOW_THREADS
    if (f == 'f') {
        const float *gp = g.view.buf, *op = out.view.buf;
        float *dp = dx.view.buf;
        for (Py_ssize_t i = 0; i < n; i++)  /* g·1 or g·0 (a -0.0, or NaN from an Inf) */
            dp[i] = gp[i] * (float)(op[i] != 0);
    } else {
        const double *gp = g.view.buf, *op = out.view.buf;
        double *dp = dx.view.buf;
        for (Py_ssize_t i = 0; i < n; i++)
            dp[i] = gp[i] * (double)(op[i] != 0);
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    release(&g);
    release(&out);
    release(&dx);
    return result;
}

/* The passes below (the Monitor's, the optimizers' steps) reach the memory's speed only if
 * their loops use the CPU's widest vectors: on x86-64 Linux with glibc (whose loader picks
 * a clone by the CPU it runs on), GCC and Clang build a clone of each for AVX2 and one for
 * AVX-512 beside the baseline (SSE2) one. Built with -ffp-contract=off, every clone rounds
 * alike: the same bits on any CPU. */
#if defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__) && \
    (defined(__GNUC__) || defined(__clang__))
#define WIDEST_VECTORS __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WIDEST_VECTORS
#endif

/* Lanes: independent sums in x's dtype that the compiler keeps in vector registers (no
 * reassociation needed). BLOCK: elements per block; each block's lanes are added into
 * float64 totals (so a float32 lane adds at most BLOCK / LANES terms), and a block of x,
 * read from memory once, is then added to each of `adds` while it is in L1. The totals
 * are added pairwise at the end (lane j + 16 into j, then j + 8, ...): a fixed order. */
#define LANES 32
#define BLOCK 2048

/* For each block [start, stop) of n: lanes a, b, c (of T) start at zero, BODY adds
 * element `at`'s terms to lane j, the lanes go into the float64 totals ta, tb, tc, and
 * AFTER runs (on the same block). */
#define LANE_SUMS(T, BODY, AFTER)                                                          \
    for (Py_ssize_t start = 0; start < n; start += BLOCK) {                                \
        Py_ssize_t stop = start + BLOCK < n ? start + BLOCK : n, i = start;                \
        T a[LANES] = {0}, b[LANES] = {0}, c[LANES] = {0};                                  \
        for (; i + LANES <= stop; i += LANES)                                              \
            for (int j = 0; j < LANES; j++) {                                              \
                Py_ssize_t at = i + j;                                                     \
                BODY                                                                       \
            }                                                                              \
        for (int j = 0; i < stop; i++, j++) {                                              \
            Py_ssize_t at = i;                                                             \
            BODY                                                                           \
        }                                                                                  \
        for (int j = 0; j < LANES; j++) {                                                  \
            ta[j] += (double)a[j];                                                         \
            tb[j] += (double)b[j];                                                         \
            tc[j] += (double)c[j];                                                         \
        }                                                                                  \
        AFTER                                                                              \
    }                                                                                      \
    for (int w = LANES / 2; w >= 1; w /= 2)                                                \
        for (int j = 0; j < w; j++) {                                                      \
            ta[j] += ta[j + w];                                                            \
            tb[j] += tb[j + w];                                                            \
            tc[j] += tc[j + w];                                                            \
        }

/* Σx² only, Σx² and Σ|x|, or Σx and Σx²: each set of sums its own loop (a term not
 * asked for would cost as much as one asked for). The totals not asked for stay 0. */
#define SUM_PASS(T, NAME, TERMS)                                                           \
WIDEST_VECTORS                                                                             \
static void NAME(const T *x, T **adds, Py_ssize_t k, Py_ssize_t n, double out[3])          \
{                                                                                          \
    double ta[LANES] = {0}, tb[LANES] = {0}, tc[LANES] = {0};                              \
    LANE_SUMS(T, T v = x[at]; TERMS,                                                       \
              for (Py_ssize_t s = 0; s < k; s++) {                                         \
                  T *total = adds[s];                                                      \
                  for (i = start; i < stop; i++)                                           \
                      total[i] += x[i];                                                    \
              })                                                                           \
    out[0] = ta[0];                                                                        \
    out[1] = tb[0];                                                                        \
    out[2] = tc[0];                                                                        \
}

SUM_PASS(float, squares_f, b[j] += v * v;)
SUM_PASS(double, squares_d, b[j] += v * v;)
SUM_PASS(float, squares_abs_f, b[j] += v * v; c[j] += fabsf(v);)
SUM_PASS(double, squares_abs_d, b[j] += v * v; c[j] += fabs(v);)
SUM_PASS(float, sum_squares_f, a[j] += v; b[j] += v * v;)
SUM_PASS(double, sum_squares_d, a[j] += v; b[j] += v * v;)

/* sum_pass's `terms`: which sums to take */
#define TERM_SUM 1
#define TERM_SQUARES 2
#define TERM_ABS 4

/* dst = src (subtract 0) or dst = src - dst (subtract 1), and Σdst². */
#define COPY_PASS(T, NAME)                                                                 \
WIDEST_VECTORS                                                                             \
static double NAME(const T *src, T *dst, int subtract, Py_ssize_t n)                       \
{                                                                                          \
    double ta[LANES] = {0}, tb[LANES] = {0}, tc[LANES] = {0};                              \
    if (subtract) {                                                                        \
        LANE_SUMS(T, T v = src[at] - dst[at]; dst[at] = v; a[j] += v * v;, )               \
    } else {                                                                               \
        LANE_SUMS(T, T v = src[at]; dst[at] = v; a[j] += v * v;, )                         \
    }                                                                                      \
    (void)tb;                                                                              \
    (void)tc;                                                                              \
    return ta[0];                                                                          \
}

COPY_PASS(float, copy_pass_f)
COPY_PASS(double, copy_pass_d)

/* At most this many arrays to add into: the Monitor keeps one noise window open at a time
 * (two where windows overlap: an interval shorter than the window). */
#define MAX_ADDS 16

static PyObject *sum_pass(PyObject *self, PyObject *args)
{
    PyObject *xo, *ao;
    Py_ssize_t n;
    int terms;
    if (!PyArg_ParseTuple(args, "OO!ni", &xo, &PyTuple_Type, &ao, &n, &terms))
        return NULL;
    void (*pass_f)(const float *, float **, Py_ssize_t, Py_ssize_t, double *);
    void (*pass_d)(const double *, double **, Py_ssize_t, Py_ssize_t, double *);
    if (terms == TERM_SQUARES) {
        pass_f = squares_f;
        pass_d = squares_d;
    } else if (terms == (TERM_SQUARES | TERM_ABS)) {
        pass_f = squares_abs_f;
        pass_d = squares_abs_d;
    } else if (terms == (TERM_SUM | TERM_SQUARES)) {
        pass_f = sum_squares_f;
        pass_d = sum_squares_d;
    } else {
        PyErr_Format(PyExc_ValueError, "_ckernels: sum_pass takes terms 2 (squares), 6 "
                     "(squares, |x|) or 3 (x, squares), got %d", terms);
        return NULL;
    }
    Py_ssize_t k = PyTuple_GET_SIZE(ao);
    if (k > MAX_ADDS) {
        PyErr_Format(PyExc_ValueError, "_ckernels: sum_pass adds into at most %d arrays, got %zd",
                     MAX_ADDS, k);
        return NULL;
    }
    Buf x = {0}, adds[MAX_ADDS] = {{{0}}};
    void *bufs[MAX_ADDS];
    PyObject *result = NULL;
    if (n < 0 || get(xo, &x, "fd", n, 0, "x") < 0)
        goto done;
    char f = format_of(&x);
    for (Py_ssize_t s = 0; s < k; s++) {
        if (get(PyTuple_GET_ITEM(ao, s), &adds[s], "fd", n, 1, "an array to add into") < 0)
            goto done;
        if (!same_format((Buf *[]){&x, &adds[s]}, 2, "x and an array to add into"))
            goto done;
        bufs[s] = adds[s].view.buf;
    }
    double out[3];
    Py_BEGIN_ALLOW_THREADS
    if (f == 'f')
        pass_f(x.view.buf, (float **)bufs, k, n, out);
    else
        pass_d(x.view.buf, (double **)bufs, k, n, out);
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("(ddd)", out[0], out[1], out[2]);
done:
    release(&x);
    for (Py_ssize_t s = 0; s < k; s++)
        release(&adds[s]);
    return result;
}

static PyObject *copy_pass(PyObject *self, PyObject *args)
{
    PyObject *so, *dso;
    int subtract;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "OOpn", &so, &dso, &subtract, &n))
        return NULL;
    Buf src = {0}, dst = {0};
    PyObject *result = NULL;
    if (n < 0 || get(so, &src, "fd", n, 0, "src") < 0 || get(dso, &dst, "fd", n, 1, "dst") < 0)
        goto done;
    if (!same_format((Buf *[]){&src, &dst}, 2, "src and dst"))
        goto done;
    double sq;
    Py_BEGIN_ALLOW_THREADS
    if (format_of(&src) == 'f')
        sq = copy_pass_f(src.view.buf, dst.view.buf, subtract, n);
    else
        sq = copy_pass_d(src.view.buf, dst.view.buf, subtract, n);
    Py_END_ALLOW_THREADS
    result = PyFloat_FromDouble(sq);
done:
    release(&src);
    release(&dst);
    return result;
}

/* SGD with momentum (the heavy-ball case of optim/sgd.py's _heavy_ball): b = b·m + g,
 * p = p - b·lr, each operation rounded to T as NumPy's in-place calls round it (no fused
 * multiply-add: the file is built with -ffp-contract=off). One pass over p, b and g where
 * NumPy makes four and a temporary. */
#define SGD_MOMENTUM(T, NAME)                                                              \
WIDEST_VECTORS                                                                             \
static void NAME(T *p, T *b, const T *g, Py_ssize_t n, T lr, T m)                         \
{                                                                                          \
    for (Py_ssize_t i = 0; i < n; i++) {                                                   \
        T v = b[i] * m;                                                                    \
        v = v + g[i];                                                                      \
        b[i] = v;                                                                          \
        T step = v * lr;                                                                   \
        p[i] = p[i] - step;                                                                \
    }                                                                                      \
}

SGD_MOMENTUM(float, sgd_momentum_f)
SGD_MOMENTUM(double, sgd_momentum_d)

static PyObject *sgd_momentum(PyObject *self, PyObject *args)
{
    PyObject *po, *bo, *go;
    Py_ssize_t n;
    double lr, m;
    if (!PyArg_ParseTuple(args, "OOOndd", &po, &bo, &go, &n, &lr, &m))
        return NULL;
    Buf p = {0}, b = {0}, g = {0};
    PyObject *result = NULL;
    if (n < 0 || get(po, &p, "fd", n, 1, "param") < 0 || get(bo, &b, "fd", n, 1, "buf") < 0 ||
        get(go, &g, "fd", n, 0, "grad") < 0)
        goto done;
    char f = same_format((Buf *[]){&p, &b, &g}, 3, "param, buf and grad");
    if (!f)
        goto done;
    Py_BEGIN_ALLOW_THREADS
    if (f == 'f')  /* the scalars as NumPy casts a Python float against a float32 array */
        sgd_momentum_f(p.view.buf, b.view.buf, g.view.buf, n, (float)lr, (float)m);
    else
        sgd_momentum_d(p.view.buf, b.view.buf, g.view.buf, n, lr, m);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    release(&p);
    release(&b);
    release(&g);
    return result;
}

/* Adam's update of one parameter (optim/adam.py without amsgrad), each operation rounded to
 * T as NumPy's in-place calls in that file round it, in their order:
 *   m: lerp towards g by w (from whichever end is nearer, as PyTorch's lerp_):
 *      w < 0.5: m = m + (g - m)·w;  else: m = g - (g - m)·(1 - w)
 *   v = v·beta2 + (g·(1 - beta2))·g
 *   p = p + (m·(-step_size)) / (sqrt(v) / bc2_sqrt + eps)
 * The scalars come as NumPy casts a Python float against the arrays' dtype. */
#define ADAM_LOOP(T, SQRT, LERP)                                                           \
    for (Py_ssize_t i = 0; i < n; i++) {                                                   \
        T gi = g[i], d = gi - m[i], mi;                                                    \
        LERP                                                                               \
        m[i] = mi;                                                                         \
        T vi = v[i] * beta2, s = gi * one_minus_beta2;                                     \
        s = s * gi;                                                                        \
        vi = vi + s;                                                                       \
        v[i] = vi;                                                                         \
        T den = SQRT(vi);                                                                  \
        den = den / bc2_sqrt;                                                              \
        den = den + eps;                                                                   \
        T u = mi * neg_step;                                                               \
        u = u / den;                                                                       \
        p[i] = p[i] + u;                                                                   \
    }

#define ADAM(T, SQRT, NAME)                                                                \
WIDEST_VECTORS                                                                             \
static void NAME(T *p, T *m, T *v, const T *g, Py_ssize_t n, int near_start, T w, T w_far, \
                 T beta2, T one_minus_beta2, T neg_step, T bc2_sqrt, T eps)               \
{                                                                                          \
    if (near_start) {                                                                      \
        ADAM_LOOP(T, SQRT, d = d * w; mi = m[i] + d;)                                      \
    } else {                                                                               \
        ADAM_LOOP(T, SQRT, d = d * w_far; mi = gi - d;)                                    \
    }                                                                                      \
}

ADAM(float, sqrtf, adam_f)
ADAM(double, sqrt, adam_d)

static PyObject *adam_step(PyObject *self, PyObject *args)
{
    PyObject *po, *mo, *vo, *go;
    Py_ssize_t n;
    double w, beta2, step_size, bc2_sqrt, eps;
    if (!PyArg_ParseTuple(args, "OOOOnddddd", &po, &mo, &vo, &go, &n, &w, &beta2, &step_size,
                          &bc2_sqrt, &eps))
        return NULL;
    Buf p = {0}, m = {0}, v = {0}, g = {0};
    PyObject *result = NULL;
    if (n < 0 || get(po, &p, "fd", n, 1, "param") < 0 || get(mo, &m, "fd", n, 1, "exp_avg") < 0 ||
        get(vo, &v, "fd", n, 1, "exp_avg_sq") < 0 || get(go, &g, "fd", n, 0, "grad") < 0)
        goto done;
    char f = same_format((Buf *[]){&p, &m, &v, &g}, 4,
                         "param, exp_avg, exp_avg_sq and grad");
    if (!f)
        goto done;
    int near_start = fabs(w) < 0.5;
    /* Python computes 1.0 - w and 1.0 - beta2 in float64; NumPy then casts each to T */
    double w_far = 1.0 - w, one_minus_beta2 = 1.0 - beta2;
    Py_BEGIN_ALLOW_THREADS
    if (f == 'f')
        adam_f(p.view.buf, m.view.buf, v.view.buf, g.view.buf, n, near_start, (float)w,
               (float)w_far, (float)beta2, (float)one_minus_beta2, (float)-step_size,
               (float)bc2_sqrt, (float)eps);
    else
        adam_d(p.view.buf, m.view.buf, v.view.buf, g.view.buf, n, near_start, w, w_far, beta2,
               one_minus_beta2, -step_size, bc2_sqrt, eps);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    release(&p);
    release(&m);
    release(&v);
    release(&g);
    return result;
}

static PyMethodDef methods[] = {
    {"max_pool2d_tiles", max_pool2d_tiles, METH_VARARGS,
     "max_pool2d_tiles(x, out, arg, planes, h, w, kh, kw, ho, wo): max-pool forward over "
     "tiling windows, into out (and the first argmax into arg, unless None)."},
    {"max_pool2d_tiles_backward", max_pool2d_tiles_backward, METH_VARARGS,
     "max_pool2d_tiles_backward(g, arg, dx, planes, h, w, kh, kw, ho, wo): its input "
     "gradient, into dx."},
    {"relu_backward", relu_backward, METH_VARARGS,
     "relu_backward(g, out, dx, n): dx = g * (out != 0)."},
    {"sum_pass", sum_pass, METH_VARARGS,
     "sum_pass(x, adds, n, terms) -> (sum of x, of x**2, of |x|; those terms asks for: 1 | 2 "
     "| 4, one of 2, 6, 3; the others 0.0), adding x into each array of the tuple adds in "
     "the same pass."},
    {"sgd_momentum", sgd_momentum, METH_VARARGS,
     "sgd_momentum(param, buf, grad, n, lr, momentum): buf = buf * momentum + grad, "
     "param -= buf * lr, in one pass."},
    {"adam_step", adam_step, METH_VARARGS,
     "adam_step(param, exp_avg, exp_avg_sq, grad, n, weight, beta2, step_size, bc2_sqrt, "
     "eps): Adam's update (no amsgrad) in one pass."},
    {"copy_pass", copy_pass, METH_VARARGS,
     "copy_pass(src, dst, subtract, n) -> sum of dst**2 after dst = src (or src - dst)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_ckernels",
    .m_doc = "Array kernels of a few ops, in C (an optional accelerator; the NumPy code is "
             "the reference).",
    .m_size = -1,
    .m_methods = methods,
};

/* Bumped whenever the functions' arguments change (ops/_kernels.py checks it). */
#define API_VERSION 5

#ifndef CKERNELS_SOURCE_SHA256
#define CKERNELS_SOURCE_SHA256 ""
#endif

PyMODINIT_FUNC PyInit__ckernels(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && (PyModule_AddIntConstant(m, "API_VERSION", API_VERSION) < 0 ||
                      PyModule_AddStringConstant(m, "SOURCE_SHA256", CKERNELS_SOURCE_SHA256) < 0)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
