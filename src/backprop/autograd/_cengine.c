/* Function.apply and the backward walk of backprop.autograd, in C: the same code paths,
 * step for step, without the interpreter's cost per step.
 *
 * function.py (_apply) and engine.py (run_backward) are the reference. This file is an
 * optional accelerator (the pattern of CPython's heapq/_heapq): it is built when a C
 * compiler is present, and backprop falls back to the Python code when it is not, when
 * its build is stale, or when BACKPROP_PURE_PYTHON=1. Every rare or subtle case (hooks,
 * in-place checks, a gradient that needs reducing or casting, anomaly mode, errors) is
 * handed to the Python helpers passed to setup() and setup_apply(), so the rules live
 * in one place and this file holds only control flow.
 *
 * apply1/apply2/applyn(cls, *args): Function.apply for positional arguments.
 * walk(heap_nodes, grads, leaves, retain_graph) runs the loop of run_backward:
 *   heap_nodes: the graph nodes that hold a gradient already (the roots' nodes);
 *   grads: dict node -> gradient delivered to the node's output so far;
 *   leaves: dict leaf tensor -> [leaf, gradient, owned], filled as engine.py does.
 * settle(leaves) then runs each leaf's hooks and adds its gradient into .grad (the end
 *   of run_backward; it needs setup_apply() too, to make the .grad tensors).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

/* attribute names, interned once */
static PyObject *s_saved_tensors, *s_inputs, *s_needs_input_grad, *s_seq, *s_hooks,
    *s_op, *s_backward, *s_data, *s_grad_fn, *s_shape, *s_dtype, *s_base, *s_requires_grad,
    *s_grad, *s_copy;

/* set by setup() */
static PyTypeObject *ndarray_type = NULL;
static PyObject *last_inplace = NULL;    /* backprop.tensor.last_inplace: a list [stamp] */
static PyObject *last_write = NULL;      /* backprop.tensor.last_write: a list [stamp] */
static PyObject *h_parent = NULL;        /* (fn, t) -> the node fn read t from, or None */
static PyObject *h_run_hooks = NULL;     /* (hooks, g) -> g */
static PyObject *h_freed_error = NULL;   /* (fn) -> exception */
static PyObject *h_check_versions = NULL;/* (fn) -> None, raises */
static PyObject *h_count_error = NULL;   /* (fn, n_grads) -> exception */
static PyObject *h_fix_grad = NULL;      /* (fn, inputs, t, ig) -> array of t's shape and dtype */
static PyObject *h_asarray = NULL;       /* numpy.asarray */
static PyObject *h_add_reduce = NULL;    /* numpy.add.reduce */

/* Node and Tensor (set by setup_apply), and the offsets of their __slots__: both are
 * fixed classes, so the hot paths read and write their slots directly. */
static PyTypeObject *node_type = NULL, *tensor_type = NULL;
static Py_ssize_t n_op, n_saved, n_hooks, n_needs, n_inputs, n_seq;
static Py_ssize_t t_data, t_requires_grad, t_grad_fn, t_grad, t_version, t_hooks;

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

/* obj.name as a new reference: read from the slot when obj is exactly `exact`, by
 * attribute lookup otherwise (a subclass, or an empty slot's AttributeError). */
static inline PyObject *field(PyObject *obj, PyTypeObject *exact, Py_ssize_t off,
                              PyObject *name)
{
    if (Py_TYPE(obj) == exact) {
        PyObject *v = SLOT(obj, off);
        if (v != NULL) {
            Py_INCREF(v);
            return v;
        }
    }
    return PyObject_GetAttr(obj, name);
}

/* Store a new reference to value in a slot, releasing what it held. */
static inline void put(PyObject *obj, Py_ssize_t off, PyObject *value)
{
    Py_INCREF(value);
    Py_XSETREF(SLOT(obj, off), value);
}

/* obj.name = value, by slot or by attribute, as field() reads it. */
static inline int set_field(PyObject *obj, PyTypeObject *exact, Py_ssize_t off,
                            PyObject *name, PyObject *value)
{
    if (Py_TYPE(obj) != exact)
        return PyObject_SetAttr(obj, name, value);
    put(obj, off, value);
    return 0;
}

/* ---- a max-heap of (seq, node), strong references to the nodes ---------------------- */
typedef struct {
    long long seq;
    PyObject *node;
} Item;

typedef struct {
    Item *items;
    Py_ssize_t n, cap;
} Heap;

static int heap_push(Heap *h, long long seq, PyObject *node)
{
    if (h->n == h->cap) {
        Py_ssize_t cap = h->cap ? h->cap * 2 : 64;
        Item *items = PyMem_Realloc(h->items, cap * sizeof(Item));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        h->items = items;
        h->cap = cap;
    }
    Py_ssize_t i = h->n++;
    while (i > 0) {
        Py_ssize_t parent = (i - 1) / 2;
        if (h->items[parent].seq >= seq)
            break;
        h->items[i] = h->items[parent];
        i = parent;
    }
    Py_INCREF(node);
    h->items[i].seq = seq;
    h->items[i].node = node;
    return 0;
}

/* Pops the largest seq; the caller owns the returned reference. */
static PyObject *heap_pop(Heap *h)
{
    PyObject *top = h->items[0].node;
    Item last = h->items[--h->n];
    Py_ssize_t i = 0, n = h->n;
    for (;;) {
        Py_ssize_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && h->items[child + 1].seq > h->items[child].seq)
            child++;
        if (h->items[child].seq <= last.seq)
            break;
        h->items[i] = h->items[child];
        i = child;
    }
    if (n > 0)
        h->items[i] = last;
    return top;
}

static void heap_clear(Heap *h)
{
    for (Py_ssize_t i = 0; i < h->n; i++)
        Py_DECREF(h->items[i].node);
    PyMem_Free(h->items);
    h->items = NULL;
    h->n = h->cap = 0;
}

/* ---- small helpers -------------------------------------------------------------------- */
static int get_seq(PyObject *node, long long *out)
{
    PyObject *seq = field(node, node_type, n_seq, s_seq);
    if (seq == NULL)
        return -1;
    *out = PyLong_AsLongLong(seq);
    Py_DECREF(seq);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* a + b as a new array (NumPy gives a scalar for 0-d operands: wrap it back). */
static PyObject *plus(PyObject *a, PyObject *b)
{
    PyObject *out = PyNumber_Add(a, b);
    if (out == NULL || Py_TYPE(out) == ndarray_type)
        return out;
    PyObject *arr = PyObject_CallOneArg(h_asarray, out);
    Py_DECREF(out);
    return arr;
}

/* a += b in place (np.add(a, b, out=a)); a is an array the engine owns. */
static int add_into(PyObject *a, PyObject *b)
{
    PyObject *r = PyNumber_InPlaceAdd(a, b);
    if (r == NULL)
        return -1;
    int same = r == a;
    Py_DECREF(r);
    if (!same) {
        PyErr_SetString(PyExc_SystemError, "backprop engine: in-place add made a new array");
        return -1;
    }
    return 0;
}

/* 1 if attribute `name` of a and b is the same object or compares equal. */
static int same_attr(PyObject *a, PyObject *b, PyObject *name, int identity_only)
{
    PyObject *x = PyObject_GetAttr(a, name);
    if (x == NULL)
        return -1;
    PyObject *y = PyObject_GetAttr(b, name);
    if (y == NULL) {
        Py_DECREF(x);
        return -1;
    }
    int same = (x == y) ? 1 : (identity_only ? 0 : PyObject_RichCompareBool(x, y, Py_EQ));
    Py_DECREF(x);
    Py_DECREF(y);
    return same;
}

/* A leaf's gradient may be kept without a copy only if nothing else holds it: not the
 * node's own incoming gradient, not a view, not returned for two inputs, not saved. */
static int is_owned(PyObject *ig, PyObject *g, PyObject *in_grads, PyObject *saved)
{
    if (ig == g)
        return 0;
    PyObject *base = PyObject_GetAttr(ig, s_base);
    if (base == NULL)
        return -1;
    int no_base = (base == Py_None);
    Py_DECREF(base);
    if (!no_base)
        return 0;
    Py_ssize_t n_same = 0;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(in_grads); k++)
        n_same += PyTuple_GET_ITEM(in_grads, k) == ig;
    if (n_same != 1)
        return 0;
    PyObject *seq = PySequence_Fast(saved, "saved_tensors must be iterable");
    if (seq == NULL)
        return -1;
    int owned = 1;
    for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(seq); k++)
        if (PySequence_Fast_GET_ITEM(seq, k) == ig)
            owned = 0;
    Py_DECREF(seq);
    return owned;
}

/* Deliver gradient ig to leaf t: start its entry, or add into the running sum. */
static int to_leaf(PyObject *leaves, PyObject *t, PyObject *ig, PyObject *g,
                   PyObject *in_grads, PyObject *saved)
{
    PyObject *entry = PyDict_GetItemWithError(leaves, t); /* borrowed */
    if (entry == NULL) {
        if (PyErr_Occurred())
            return -1;
        int owned = is_owned(ig, g, in_grads, saved);
        if (owned < 0)
            return -1;
        PyObject *e = PyList_New(3);
        if (e == NULL)
            return -1;
        Py_INCREF(t);
        PyList_SET_ITEM(e, 0, t);
        Py_INCREF(ig);
        PyList_SET_ITEM(e, 1, ig);
        PyObject *flag = owned ? Py_True : Py_False;
        Py_INCREF(flag);
        PyList_SET_ITEM(e, 2, flag);
        int rc = PyDict_SetItem(leaves, t, e);
        Py_DECREF(e);
        return rc;
    }
    if (!PyList_Check(entry) || PyList_GET_SIZE(entry) != 3) {
        PyErr_SetString(PyExc_SystemError, "backprop engine: malformed leaf entry");
        return -1;
    }
    if (PyList_GET_ITEM(entry, 2) == Py_True)  /* the engine owns the running sum */
        return add_into(PyList_GET_ITEM(entry, 1), ig);
    PyObject *total = plus(PyList_GET_ITEM(entry, 1), ig);
    if (total == NULL)
        return -1;
    PyList_SetItem(entry, 1, total); /* steals total */
    Py_INCREF(Py_True);
    PyList_SetItem(entry, 2, Py_True);
    return 0;
}

/* Deliver gradient ig to graph node parent; queue the node on its first gradient. */
static int to_node(PyObject *grads, PyObject *sums, Heap *heap, PyObject *parent, PyObject *ig)
{
    PyObject *prev = PyDict_GetItemWithError(grads, parent); /* borrowed */
    if (prev == NULL) {
        if (PyErr_Occurred())
            return -1;
        long long seq;
        if (get_seq(parent, &seq) < 0 || PyDict_SetItem(grads, parent, ig) < 0)
            return -1;
        return heap_push(heap, seq, parent);
    }
    PyObject *key = PyLong_FromVoidPtr(prev);
    if (key == NULL)
        return -1;
    int ours = PyDict_Contains(sums, key);
    Py_DECREF(key);
    if (ours < 0)
        return -1;
    if (ours)  /* a sum the engine made: safe to add into in place */
        return add_into(prev, ig);
    PyObject *total = plus(prev, ig);
    if (total == NULL)
        return -1;
    key = PyLong_FromVoidPtr(total);
    int rc = key == NULL ? -1 : PyDict_SetItem(sums, key, total);
    Py_XDECREF(key);
    if (rc == 0)
        rc = PyDict_SetItem(grads, parent, total);
    Py_DECREF(total);
    return rc;
}

/* The one reduction common enough to keep out of _fix_grad: a gradient with extra
 * leading axes over an input of the same dtype (a bias broadcast over a batch). Gives
 * np.add.reduce(ig, axis=(0, ..., lead - 1)), which is what unbroadcast returns then;
 * Py_None when the case is another (for _fix_grad); NULL on error. */
static PyObject *sum_leading(PyObject *ig, PyObject *data)
{
    PyObject *gshape = NULL, *shape = NULL, *tail = NULL, *axes = NULL, *out = NULL;
    int same = same_attr(ig, data, s_dtype, 1);
    if (same <= 0)
        return same < 0 ? NULL : Py_NewRef(Py_None);
    if ((gshape = PyObject_GetAttr(ig, s_shape)) == NULL ||
        (shape = PyObject_GetAttr(data, s_shape)) == NULL)
        goto done;
    if (!PyTuple_Check(gshape) || !PyTuple_Check(shape))
        goto other;
    Py_ssize_t lead = PyTuple_GET_SIZE(gshape) - PyTuple_GET_SIZE(shape);
    if (lead <= 0)
        goto other;
    if ((tail = PyTuple_GetSlice(gshape, lead, PyTuple_GET_SIZE(gshape))) == NULL)
        goto done;
    int eq = PyObject_RichCompareBool(tail, shape, Py_EQ);
    if (eq <= 0) {
        if (eq == 0)
            goto other;
        goto done;
    }
    if ((axes = PyTuple_New(lead)) == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < lead; i++) {
        PyObject *k = PyLong_FromSsize_t(i);
        if (k == NULL)
            goto done;
        PyTuple_SET_ITEM(axes, i, k);
    }
    out = PyObject_CallFunctionObjArgs(h_add_reduce, ig, axes, NULL);
    if (out != NULL && Py_TYPE(out) != ndarray_type)  /* a 0-d input: NumPy gives a scalar */
        Py_SETREF(out, PyObject_CallOneArg(h_asarray, out));
    goto done;
other:
    out = Py_NewRef(Py_None);
done:
    Py_XDECREF(gshape);
    Py_XDECREF(shape);
    Py_XDECREF(tail);
    Py_XDECREF(axes);
    return out;
}

/* Run one node: its hooks, its backward, and deliver each input's gradient. */
static int run_node(PyObject *fn, PyObject *grads, PyObject *sums, PyObject *leaves,
                    Heap *heap, int retain_graph)
{
    int rc = -1;
    PyObject *g = NULL, *hooks = NULL, *saved = NULL, *inputs = NULL, *needs = NULL;
    PyObject *op = NULL, *in_grads = NULL, *seqobj = NULL;

    /* g = grads.pop(fn) */
    g = PyDict_GetItemWithError(grads, fn);
    if (g == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_SystemError, "backprop engine: node without a gradient");
        return -1;
    }
    Py_INCREF(g);
    if (PyDict_DelItem(grads, fn) < 0)
        goto done;
    if (PyDict_GET_SIZE(sums)) {  /* from here on g may be passed on: never add into it */
        PyObject *key = PyLong_FromVoidPtr(g);
        if (key == NULL)
            goto done;
        int found = PyDict_Contains(sums, key);
        if (found > 0 && PyDict_DelItem(sums, key) < 0)
            found = -1;
        Py_DECREF(key);
        if (found < 0)
            goto done;
    }
    hooks = field(fn, node_type, n_hooks, s_hooks);
    if (hooks == NULL)
        goto done;
    if (hooks != Py_None) {
        int truth = PyObject_IsTrue(hooks);
        if (truth < 0)
            goto done;
        if (truth) {
            PyObject *g2 = PyObject_CallFunctionObjArgs(h_run_hooks, hooks, g, NULL);
            if (g2 == NULL)
                goto done;
            Py_SETREF(g, g2);
        }
    }
    saved = field(fn, node_type, n_saved, s_saved_tensors);
    if (saved == NULL)
        goto done;
    inputs = field(fn, node_type, n_inputs, s_inputs);
    if (inputs == NULL)
        goto done;
    if (saved == Py_None || inputs == Py_None) {
        PyObject *err = PyObject_CallOneArg(h_freed_error, fn);
        if (err != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(err), err);
            Py_DECREF(err);
        }
        goto done;
    }
    /* (a tuple, as apply makes it; any other sequence is read as Python would) */
    Py_SETREF(inputs, PySequence_Fast(inputs, "a node's inputs must be a sequence"));
    if (inputs == NULL)
        goto done;
    /* something changed in place after this op ran? */
    seqobj = field(fn, node_type, n_seq, s_seq);
    if (seqobj == NULL)
        goto done;
    /* the newest in-place write the graph recorded (0: none yet) */
    long long written = PyLong_AsLongLong(PyList_GET_ITEM(last_write, 0));
    long long fn_seq = PyLong_AsLongLong(seqobj);
    if ((written == -1 || fn_seq == -1) && PyErr_Occurred())
        goto done;
    {
        PyObject *stamp = PyList_GET_ITEM(last_inplace, 0); /* borrowed */
        int later = PyObject_RichCompareBool(stamp, seqobj, Py_GT);
        if (later < 0)
            goto done;
        if (later) {
            PyObject *r = PyObject_CallOneArg(h_check_versions, fn);
            if (r == NULL)
                goto done;
            Py_DECREF(r);
        }
    }
    op = field(fn, node_type, n_op, s_op);
    if (op == NULL)
        goto done;
    in_grads = PyObject_CallMethodObjArgs(op, s_backward, fn, g, NULL);
    if (in_grads == NULL)
        goto done;
    if (!PyTuple_CheckExact(in_grads)) {
        PyObject *t = PyList_Check(in_grads) ? PyList_AsTuple(in_grads)
                                             : PyTuple_Pack(1, in_grads);
        if (t == NULL)
            goto done;
        Py_SETREF(in_grads, t);
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(inputs);
    if (PyTuple_GET_SIZE(in_grads) != n) {
        PyObject *err = PyObject_CallFunction(h_count_error, "On", fn,
                                              PyTuple_GET_SIZE(in_grads));
        if (err != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(err), err);
            Py_DECREF(err);
        }
        goto done;
    }
    needs = field(fn, node_type, n_needs, s_needs_input_grad);
    if (needs == NULL)
        goto done;
    Py_SETREF(needs, PySequence_Fast(needs, "needs_input_grad must be a sequence"));
    if (needs == NULL)
        goto done;
    if (PySequence_Fast_GET_SIZE(needs) < n)  /* zip() in the Python loop stops there */
        n = PySequence_Fast_GET_SIZE(needs);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PySequence_Fast_GET_ITEM(inputs, i);
        PyObject *ig = PyTuple_GET_ITEM(in_grads, i);
        int need = PyObject_IsTrue(PySequence_Fast_GET_ITEM(needs, i));
        if (need < 0)
            goto done;
        if (!need || ig == Py_None || t == Py_None)
            continue;
        Py_INCREF(ig);
        /* the common case: an array of the input's shape and dtype, used as is */
        int fine = Py_TYPE(ig) == ndarray_type;
        if (fine) {
            PyObject *data = field(t, tensor_type, t_data, s_data);
            if (data == NULL) {
                Py_DECREF(ig);
                goto done;
            }
            fine = same_attr(ig, data, s_shape, 0);
            if (fine == 1)
                fine = same_attr(ig, data, s_dtype, 1);
            else if (fine == 0) {  /* a bias's gradient, summed here; others: _fix_grad */
                PyObject *summed = sum_leading(ig, data);
                if (summed == NULL)
                    fine = -1;
                else if (summed == Py_None)
                    Py_DECREF(summed);
                else {
                    Py_SETREF(ig, summed);
                    fine = 1;
                }
            }
            Py_DECREF(data);
            if (fine < 0) {
                Py_DECREF(ig);
                goto done;
            }
        }
        if (!fine) {  /* reduce a broadcast gradient, cast it, or turn it into an array */
            PyObject *fixed = PyObject_CallFunctionObjArgs(h_fix_grad, fn, inputs, t, ig, NULL);
            Py_DECREF(ig);
            if (fixed == NULL)
                goto done;
            ig = fixed;
        }
        PyObject *parent = field(t, tensor_type, t_grad_fn, s_grad_fn);
        if (parent == NULL) {
            Py_DECREF(ig);
            goto done;
        }
        if (written && parent != Py_None) {
            /* t written since this node read it (older history to find), or its history
             * older than a write (a stale view)? engine._parent decides */
            long long pseq;
            if (get_seq(parent, &pseq) < 0) {
                Py_DECREF(parent);
                Py_DECREF(ig);
                goto done;
            }
            if (pseq >= fn_seq || pseq < written) {
                Py_SETREF(parent, PyObject_CallFunctionObjArgs(h_parent, fn, t, NULL));
                if (parent == NULL) {
                    Py_DECREF(ig);
                    goto done;
                }
            }
        }
        int r = parent == Py_None ? to_leaf(leaves, t, ig, g, in_grads, saved)
                                  : to_node(grads, sums, heap, parent, ig);
        Py_DECREF(parent);
        Py_DECREF(ig);
        if (r < 0)
            goto done;
    }
    if (!retain_graph) {
        /* free what backward used: saved arrays, and the links to the input tensors */
        if (set_field(fn, node_type, n_saved, s_saved_tensors, Py_None) < 0 ||
            set_field(fn, node_type, n_inputs, s_inputs, Py_None) < 0)
            goto done;
    }
    rc = 0;
done:
    Py_XDECREF(g);
    Py_XDECREF(hooks);
    Py_XDECREF(saved);
    Py_XDECREF(inputs);
    Py_XDECREF(needs);
    Py_XDECREF(op);
    Py_XDECREF(in_grads);
    Py_XDECREF(seqobj);
    return rc;
}

static PyObject *walk(PyObject *self, PyObject *args)
{
    PyObject *start, *grads, *leaves;
    int retain_graph;
    if (!PyArg_ParseTuple(args, "O!O!O!p", &PyList_Type, &start, &PyDict_Type, &grads,
                          &PyDict_Type, &leaves, &retain_graph))
        return NULL;
    if (ndarray_type == NULL || node_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "backprop engine: setup() and setup_apply() must be called first");
        return NULL;
    }
    Heap heap = {NULL, 0, 0};
    PyObject *sums = PyDict_New();  /* id -> array, for the sums the engine allocated */
    if (sums == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(start); i++) {
        PyObject *node = PyList_GET_ITEM(start, i);
        long long seq;
        if (get_seq(node, &seq) < 0 || heap_push(&heap, seq, node) < 0)
            goto fail;
    }
    while (heap.n) {
        PyObject *fn = heap_pop(&heap);
        int r = run_node(fn, grads, sums, leaves, &heap, retain_graph);
        Py_DECREF(fn);
        if (r < 0)
            goto fail;
    }
    heap_clear(&heap);
    Py_DECREF(sums);
    Py_RETURN_NONE;
fail:
    heap_clear(&heap);
    Py_DECREF(sums);
    return NULL;
}

static PyObject *setup(PyObject *self, PyObject *args)
{
    PyObject *nd, *li, *lw, *rh, *fe, *cv, *ce, *fg, *aa, *ar, *hp;
    if (!PyArg_ParseTuple(args, "O!O!O!OOOOOOOO", &PyType_Type, &nd, &PyList_Type, &li,
                          &PyList_Type, &lw, &rh, &fe, &cv, &ce, &fg, &aa, &ar, &hp))
        return NULL;
    if (PyList_GET_SIZE(li) != 1 || PyList_GET_SIZE(lw) != 1) {
        PyErr_SetString(PyExc_ValueError,
                        "setup: last_inplace and last_write must be lists of one stamp");
        return NULL;
    }
    Py_INCREF(lw);
    Py_XSETREF(last_write, lw);
    Py_INCREF(hp);
    Py_XSETREF(h_parent, hp);
    Py_INCREF(nd);
    Py_XSETREF(ndarray_type, (PyTypeObject *)nd);
    Py_INCREF(li);
    Py_XSETREF(last_inplace, li);
    Py_INCREF(rh);
    Py_XSETREF(h_run_hooks, rh);
    Py_INCREF(fe);
    Py_XSETREF(h_freed_error, fe);
    Py_INCREF(cv);
    Py_XSETREF(h_check_versions, cv);
    Py_INCREF(ce);
    Py_XSETREF(h_count_error, ce);
    Py_INCREF(fg);
    Py_XSETREF(h_fix_grad, fg);
    Py_INCREF(aa);
    Py_XSETREF(h_asarray, aa);
    Py_INCREF(ar);
    Py_XSETREF(h_add_reduce, ar);
    Py_RETURN_NONE;
}

/* ---- the forward half: Function.apply for positional arguments -----------------------
 *
 * apply1(cls, a), apply2(cls, a, b) and applyn(cls, *args) do what Function.apply does
 * (function.py is the reference): make the node, unwrap tensors, run cls.forward on
 * arrays, wrap the result and link it into the graph when an input requires grad.
 * Node and Tensor are fixed __slots__ classes, so their slots are written directly
 * at offsets read once from the classes' member descriptors in setup_apply().
 */
static PyObject *grad_state = NULL, *anomaly_state = NULL, *seq_clock = NULL;
static PyObject *needs2[4], *grad1 = NULL, *no_grad1 = NULL, *empty_tuple = NULL;
static PyObject *h_as_output = NULL;       /* (cls, out) -> array, or raises */
static PyObject *h_anomaly_forward = NULL; /* (ctx, out) -> None, or raises */
static PyObject *s_forward, *s_enabled;

static int slot_offset(PyTypeObject *type, const char *name, Py_ssize_t *out)
{
    PyObject *d = PyDict_GetItemString(type->tp_dict, name); /* borrowed */
    if (d == NULL || !Py_IS_TYPE(d, &PyMemberDescr_Type) ||
        ((PyMemberDescrObject *)d)->d_member->type != T_OBJECT_EX) {
        PyErr_Format(PyExc_TypeError, "setup_apply: %s.%s is not a __slots__ slot",
                     type->tp_name, name);
        return -1;
    }
    *out = ((PyMemberDescrObject *)d)->d_member->offset;
    return 0;
}

static inline int is_tensor(PyObject *x)
{
    return PyObject_TypeCheck(x, tensor_type);
}

/* The tensor's array (a NEW reference: forward may run code that replaces the
 * tensor's array before it is called) and whether it requires grad. */
static inline int unwrap(PyObject *x, PyObject **data, int *requires_grad)
{
    PyObject *d, *r;
    if (Py_TYPE(x) == tensor_type && SLOT(x, t_data) != NULL &&
        SLOT(x, t_requires_grad) != NULL) {
        d = SLOT(x, t_data);
        r = SLOT(x, t_requires_grad);
        Py_INCREF(d);
        Py_INCREF(r);
    } else {  /* a subclass (Parameter), or an empty slot: attribute lookup (and its error) */
        if ((d = PyObject_GetAttr(x, s_data)) == NULL)
            return -1;
        if ((r = PyObject_GetAttr(x, s_requires_grad)) == NULL) {
            Py_DECREF(d);
            return -1;
        }
    }
    int rg = (r == Py_True) ? 1 : (r == Py_False ? 0 : PyObject_IsTrue(r));
    Py_DECREF(r);
    if (rg < 0) {
        Py_DECREF(d);
        return -1;
    }
    *data = d;
    *requires_grad = rg;
    return 0;
}

static int flag(PyObject *obj)
{
    PyObject *v = PyObject_GetAttr(obj, s_enabled);
    if (v == NULL)
        return -1;
    int on = PyObject_IsTrue(v);
    Py_DECREF(v);
    return on;
}

static PyObject *new_node(PyObject *cls)
{
    /* object.__new__(Node), as function.py does: on 3.11 and 3.12 it also sets up the
     * instance's inline attribute values, which tp_alloc alone leaves out */
    PyObject *ctx = PyBaseObject_Type.tp_new(node_type, empty_tuple, NULL);
    if (ctx == NULL)
        return NULL;
    put(ctx, n_op, cls);
    put(ctx, n_saved, empty_tuple);
    put(ctx, n_hooks, Py_None);
    return ctx;
}

/* A Tensor of `data` outside the graph, as tensor.py's _make(data). Steals data. */
static PyObject *new_tensor(PyObject *data)
{
    PyObject *t = tensor_type->tp_alloc(tensor_type, 0);
    if (t == NULL) {
        Py_DECREF(data);
        return NULL;
    }
    SLOT(t, t_data) = data;
    put(t, t_requires_grad, Py_False);
    put(t, t_grad_fn, Py_None);
    put(t, t_grad, Py_None);
    put(t, t_hooks, Py_None);
    PyObject *zero = PyLong_FromLong(0);
    if (zero == NULL) {
        Py_DECREF(t);
        return NULL;
    }
    SLOT(t, t_version) = zero;
    return t;
}

/* Wrap the forward output; link the node in when recording. Steals out. */
static PyObject *finish(PyObject *cls, PyObject *ctx, PyObject *out, PyObject *inputs, int record)
{
    if (Py_TYPE(out) != ndarray_type) {
        PyObject *arr = PyObject_CallFunctionObjArgs(h_as_output, cls, out, NULL);
        Py_DECREF(out);
        if (arr == NULL)
            return NULL;
        out = arr;
    }
    int anomaly = flag(anomaly_state);
    if (anomaly < 0)
        goto fail;
    if (anomaly) {
        PyObject *r = PyObject_CallFunctionObjArgs(h_anomaly_forward, ctx, out, NULL);
        if (r == NULL)
            goto fail;
        Py_DECREF(r);
    }
    PyObject *result = new_tensor(out);  /* steals out */
    if (result == NULL)
        return NULL;
    if (record) {
        PyObject *seq = PyIter_Next(seq_clock);
        if (seq == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_RuntimeError, "backprop: the clock stopped");
            Py_DECREF(result);
            return NULL;
        }
        put(ctx, n_inputs, inputs);
        Py_XSETREF(SLOT(ctx, n_seq), seq);  /* forward may have set ctx.seq */
        put(result, t_requires_grad, Py_True);
        put(result, t_grad_fn, ctx);
    }
    return result;
fail:
    Py_DECREF(out);
    return NULL;
}

/* Make the node, run cls.forward(ctx, *arrays) and wrap its output. Steals inputs. */
static PyObject *run_forward(PyObject *cls, PyObject *inputs, PyObject *const *arrays,
                             Py_ssize_t n, int requires_grad, PyObject *needs,
                             PyObject *no_needs)
{
    PyObject *ctx = NULL, *forward = NULL, *out, *result = NULL;
    if (inputs == NULL)
        return NULL;
    int record = 0;
    if (requires_grad && (record = flag(grad_state)) < 0)
        goto done;
    if ((ctx = new_node(cls)) == NULL)
        goto done;
    put(ctx, n_needs, record ? needs : no_needs);
    if ((forward = PyObject_GetAttr(cls, s_forward)) == NULL)
        goto done;
    PyObject *small[9], **fargs = small;
    if (n + 1 > 9 && (fargs = PyMem_Malloc((n + 1) * sizeof(PyObject *))) == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    fargs[0] = ctx;
    for (Py_ssize_t i = 0; i < n; i++)
        fargs[i + 1] = arrays[i];
    out = PyObject_Vectorcall(forward, fargs, n + 1, NULL);
    if (fargs != small)
        PyMem_Free(fargs);
    if (out != NULL)
        result = finish(cls, ctx, out, inputs, record);
done:
    Py_XDECREF(forward);
    Py_XDECREF(ctx);
    Py_DECREF(inputs);
    return result;
}

static PyObject *apply2(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "apply2(cls, a, b) takes 3 arguments");
        return NULL;
    }
    if (node_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "backprop engine: setup_apply() was not called");
        return NULL;
    }
    PyObject *a = args[1], *b = args[2], *arrays[2] = {NULL, NULL};
    int ra = 0, rb = 0, ta = is_tensor(a), tb = is_tensor(b);
    if (ta ? unwrap(a, &arrays[0], &ra) < 0 : (arrays[0] = Py_NewRef(a)) == NULL)
        return NULL;
    if (tb ? unwrap(b, &arrays[1], &rb) < 0 : (arrays[1] = Py_NewRef(b)) == NULL) {
        Py_DECREF(arrays[0]);
        return NULL;
    }
    /* the node's parents: the tensor arguments, None for plain values */
    PyObject *inputs = ta ? PyTuple_Pack(2, a, tb ? b : Py_None) : PyTuple_Pack(2, Py_None, b);
    PyObject *res = run_forward(args[0], inputs, arrays, 2, ra || rb, needs2[ra + 2 * rb],
                                needs2[0]);
    Py_DECREF(arrays[0]);
    Py_DECREF(arrays[1]);
    return res;
}

static PyObject *apply1(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "apply1(cls, a) takes 2 arguments");
        return NULL;
    }
    if (node_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "backprop engine: setup_apply() was not called");
        return NULL;
    }
    PyObject *a = args[1], *arrays[1] = {NULL};
    int ra = 0;
    if (is_tensor(a) ? unwrap(a, &arrays[0], &ra) < 0 : (arrays[0] = Py_NewRef(a)) == NULL)
        return NULL;
    PyObject *res = run_forward(args[0], PyTuple_Pack(1, a), arrays, 1, ra, grad1, no_grad1);
    Py_DECREF(arrays[0]);
    return res;
}

/* applyn(cls, *args): any number of positional arguments (the generic path of _apply). */
static PyObject *applyn(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "applyn(cls, *args) needs the Function class");
        return NULL;
    }
    if (node_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "backprop engine: setup_apply() was not called");
        return NULL;
    }
    Py_ssize_t n = nargs - 1, done = 0;
    PyObject *small[8], **arrays = small, *inputs = NULL, *needs = NULL, *no_needs = NULL;
    PyObject *result = NULL;
    int any = 0;
    if (n > 8 && (arrays = PyMem_Malloc(n * sizeof(PyObject *))) == NULL)
        return PyErr_NoMemory();
    inputs = PyTuple_New(n);
    needs = PyTuple_New(n);
    no_needs = PyTuple_New(n);
    if (inputs == NULL || needs == NULL || no_needs == NULL)
        goto fail;
    for (; done < n; done++) {
        PyObject *a = args[done + 1];
        int r = 0, t = is_tensor(a);
        if (t ? unwrap(a, &arrays[done], &r) < 0 : (arrays[done] = Py_NewRef(a)) == NULL)
            goto fail;
        any |= r;
        PyTuple_SET_ITEM(inputs, done, Py_NewRef(t ? a : Py_None));
        PyTuple_SET_ITEM(needs, done, Py_NewRef(r ? Py_True : Py_False));
        PyTuple_SET_ITEM(no_needs, done, Py_NewRef(Py_False));
    }
    result = run_forward(args[0], inputs, arrays, n, any, needs, no_needs);
    inputs = NULL;  /* run_forward took it */
fail:
    for (Py_ssize_t i = 0; i < done; i++)
        Py_DECREF(arrays[i]);
    if (arrays != small)
        PyMem_Free(arrays);
    Py_XDECREF(inputs);
    Py_XDECREF(needs);
    Py_XDECREF(no_needs);
    return result;
}

/* settle(leaves): the end of run_backward. For each [leaf, gradient, owned] entry: run
 * the leaf's hooks, then start its .grad (the gradient itself when the engine owns it,
 * else a copy) or add into it. */
static PyObject *settle(PyObject *self, PyObject *leaves)
{
    if (!PyDict_Check(leaves)) {
        PyErr_SetString(PyExc_TypeError, "settle(leaves): leaves must be a dict");
        return NULL;
    }
    if (tensor_type == NULL || h_run_hooks == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "backprop engine: setup() and setup_apply() must be called first");
        return NULL;
    }
    Py_ssize_t pos = 0;
    PyObject *key, *entry;
    while (PyDict_Next(leaves, &pos, &key, &entry)) {
        if (!PyList_Check(entry) || PyList_GET_SIZE(entry) != 3) {
            PyErr_SetString(PyExc_SystemError, "backprop engine: malformed leaf entry");
            return NULL;
        }
        PyObject *t = PyList_GET_ITEM(entry, 0);
        PyObject *g = Py_NewRef(PyList_GET_ITEM(entry, 1));
        int owned = PyList_GET_ITEM(entry, 2) == Py_True;
        PyObject *hooks = field(t, tensor_type, t_hooks, s_hooks);
        int truth = hooks == NULL ? -1 : PyObject_IsTrue(hooks);
        if (truth > 0) {
            PyObject *g2 = PyObject_CallFunctionObjArgs(h_run_hooks, hooks, g, NULL);
            truth = g2 == NULL ? -1 : 0;
            if (g2 != NULL)
                Py_SETREF(g, g2);
            owned = 0;
        }
        Py_XDECREF(hooks);
        PyObject *grad = truth < 0 ? NULL : field(t, tensor_type, t_grad, s_grad);
        if (grad == NULL) {
            Py_DECREF(g);
            return NULL;
        }
        int rc;
        if (grad == Py_None) {  /* t.grad = _make(g if owned else g.copy()) */
            if (!owned)
                Py_SETREF(g, PyObject_CallMethodNoArgs(g, s_copy));
            PyObject *made = g == NULL ? NULL : new_tensor(g);  /* steals g */
            g = NULL;
            rc = made == NULL ? -1 : set_field(t, tensor_type, t_grad, s_grad, made);
            Py_XDECREF(made);
        } else {  /* t.grad._data = _plus(t.grad._data, g) */
            PyObject *old = field(grad, tensor_type, t_data, s_data);
            PyObject *total = old == NULL ? NULL : plus(old, g);
            rc = total == NULL ? -1 : set_field(grad, tensor_type, t_data, s_data, total);
            Py_XDECREF(old);
            Py_XDECREF(total);
        }
        Py_XDECREF(g);
        Py_DECREF(grad);
        if (rc < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *setup_apply(PyObject *self, PyObject *args)
{
    PyObject *nt, *tt, *gs, *as, *ck, *n2, *g1, *ng1, *ao, *af;
    if (!PyArg_ParseTuple(args, "O!O!OOOO!OOOO", &PyType_Type, &nt, &PyType_Type, &tt, &gs,
                          &as, &ck, &PyTuple_Type, &n2, &g1, &ng1, &ao, &af))
        return NULL;
    if (PyTuple_GET_SIZE(n2) != 4) {
        PyErr_SetString(PyExc_ValueError, "setup_apply: needs2 must hold 4 tuples");
        return NULL;
    }
    PyTypeObject *node = (PyTypeObject *)nt, *tensor = (PyTypeObject *)tt;
    if (slot_offset(node, "op", &n_op) < 0 || slot_offset(node, "saved_tensors", &n_saved) < 0 ||
        slot_offset(node, "_hooks", &n_hooks) < 0 ||
        slot_offset(node, "needs_input_grad", &n_needs) < 0 ||
        slot_offset(node, "inputs", &n_inputs) < 0 || slot_offset(node, "seq", &n_seq) < 0 ||
        slot_offset(tensor, "_data", &t_data) < 0 ||
        slot_offset(tensor, "_requires_grad", &t_requires_grad) < 0 ||
        slot_offset(tensor, "grad_fn", &t_grad_fn) < 0 || slot_offset(tensor, "grad", &t_grad) < 0 ||
        slot_offset(tensor, "_version", &t_version) < 0 ||
        slot_offset(tensor, "_hooks", &t_hooks) < 0)
        return NULL;
    if (empty_tuple == NULL && (empty_tuple = PyTuple_New(0)) == NULL)
        return NULL;
#define KEEP(var, value) Py_INCREF(value); Py_XSETREF(var, value);
    KEEP(node_type, node);
    KEEP(tensor_type, tensor);
    KEEP(grad_state, gs);
    KEEP(anomaly_state, as);
    KEEP(seq_clock, ck);
    for (int i = 0; i < 4; i++) {
        KEEP(needs2[i], PyTuple_GET_ITEM(n2, i));
    }
    KEEP(grad1, g1);
    KEEP(no_grad1, ng1);
    KEEP(h_as_output, ao);
    KEEP(h_anomaly_forward, af);
#undef KEEP
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"walk", walk, METH_VARARGS,
     "walk(heap_nodes, grads, leaves, retain_graph): the loop of engine.run_backward."},
    {"settle", settle, METH_O,
     "settle(leaves): run the leaves' hooks and accumulate their gradients into .grad."},
    {"setup", setup, METH_VARARGS,
     "setup(ndarray, last_inplace, last_write, run_hooks, freed_error, check_versions, "
     "count_error, fix_grad, asarray, add_reduce, parent): the Python helpers the loop hands "
     "rare cases to."},
    {"apply1", (PyCFunction)(void (*)(void))apply1, METH_FASTCALL,
     "apply1(cls, a): Function.apply for one positional argument and no keywords."},
    {"apply2", (PyCFunction)(void (*)(void))apply2, METH_FASTCALL,
     "apply2(cls, a, b): Function.apply for two positional arguments and no keywords."},
    {"applyn", (PyCFunction)(void (*)(void))applyn, METH_FASTCALL,
     "applyn(cls, *args): Function.apply for any number of positional arguments, no keywords."},
    {"setup_apply", setup_apply, METH_VARARGS,
     "setup_apply(Node, Tensor, grad_state, anomaly_state, clock, needs2, grad1, no_grad1, "
     "as_output, anomaly_forward)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_cengine",
    .m_doc = "Function.apply and the backward walk of backprop.autograd, in C (an optional "
             "accelerator; the Python code is the reference).",
    .m_size = -1,
    .m_methods = methods,
};

/* Bumped whenever the functions' arguments change, so that engine.py never uses a
 * stale build of this file (it falls back to Python and says so). */
#define API_VERSION 4

/* setup.py defines the SHA-256 of this file, so engine.py can tell a build of an
 * older version of it sitting beside the source (an in-place, editable build). */
#ifndef CENGINE_SOURCE_SHA256
#define CENGINE_SOURCE_SHA256 ""
#endif

PyMODINIT_FUNC PyInit__cengine(void)
{
#define INTERN(var, text)                                   \
    if ((var = PyUnicode_InternFromString(text)) == NULL)   \
        return NULL;
    INTERN(s_saved_tensors, "saved_tensors");
    INTERN(s_inputs, "inputs");
    INTERN(s_needs_input_grad, "needs_input_grad");
    INTERN(s_seq, "seq");
    INTERN(s_hooks, "_hooks");
    INTERN(s_op, "op");
    INTERN(s_backward, "backward");
    INTERN(s_data, "_data");
    INTERN(s_grad_fn, "grad_fn");
    INTERN(s_shape, "shape");
    INTERN(s_dtype, "dtype");
    INTERN(s_base, "base");
    INTERN(s_forward, "forward");
    INTERN(s_enabled, "enabled");
    INTERN(s_requires_grad, "_requires_grad");
    INTERN(s_grad, "grad");
    INTERN(s_copy, "copy");
#undef INTERN
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && (PyModule_AddIntConstant(m, "API_VERSION", API_VERSION) < 0 ||
                      PyModule_AddStringConstant(m, "SOURCE_SHA256", CENGINE_SOURCE_SHA256) < 0)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
