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
    if (format_of(&x) != format_of(&out)) {
        PyErr_SetString(PyExc_TypeError, "_ckernels: x and out differ in dtype");
        goto done;
    }
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
    if (format_of(&g) != format_of(&dx)) {
        PyErr_SetString(PyExc_TypeError, "_ckernels: g and dx differ in dtype");
        goto done;
    }
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
    char f = format_of(&g);
    if (format_of(&out) != f || format_of(&dx) != f) {
        PyErr_SetString(PyExc_TypeError, "_ckernels: g, out and dx differ in dtype");
        goto done;
    }
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

static PyMethodDef methods[] = {
    {"max_pool2d_tiles", max_pool2d_tiles, METH_VARARGS,
     "max_pool2d_tiles(x, out, arg, planes, h, w, kh, kw, ho, wo): max-pool forward over "
     "tiling windows, into out (and the first argmax into arg, unless None)."},
    {"max_pool2d_tiles_backward", max_pool2d_tiles_backward, METH_VARARGS,
     "max_pool2d_tiles_backward(g, arg, dx, planes, h, w, kh, kw, ho, wo): its input "
     "gradient, into dx."},
    {"relu_backward", relu_backward, METH_VARARGS,
     "relu_backward(g, out, dx, n): dx = g * (out != 0)."},
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
#define API_VERSION 1

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
