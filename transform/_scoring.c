/*
 * transform._scoring: the per-article arithmetic of candidate scoring in transform.clustering, in C.
 *
 * Why: the scoring loop is many small NumPy calls and list/dict building per article (Python object work that a
 * Cython compile of the module does not remove). These functions take the event arrays the clusterer already keeps
 * (through the buffer protocol: no NumPy C API, no NumPy at build time) and do the loops without Python objects per
 * key.
 *
 * Every result must be bit-identical to the pure-Python path of transform.clustering (the reference):
 *   - dot products are math.fsum of the products: fsum() below is CPython's exactly rounded algorithm (Shewchuk
 *     partials and the final half-even correction of Modules/mathmodule.c);
 *   - norms are np.add.reduce over each event's squares: pairwise_sum() below is NumPy's pairwise summation
 *     (8 accumulators up to 128 elements, halving above), added to the reduction's initial 0.0;
 *   - no logarithm is taken here: the caller passes IDF values NumPy computed, for just the document frequencies
 *     the scored events hold (frequencies() lists them), so that the per-article work does not grow with the
 *     number of live articles;
 *   - hit weights are added one by one in key order from 0.0, as np.add.at does.
 * Build with -ffp-contract=off (setup.py) so that no product and sum are fused into one rounding.
 *
 * The list arguments are copied into tuples on entry (with_tuples): reading an item can run Python code
 * (__index__, __float__, __buffer__), which could otherwise shrink a list whose size the loop has already taken.
 *
 * SCORING_ABI is checked by transform.scoring: bump it whenever a function's signature or meaning changes, so a
 * stale build is refused rather than run. SCORING_SOURCE_HASH (set by setup.py) lets it also refuse a build made
 * from another version of this file.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define SCORING_ABI 2
#ifndef SCORING_SOURCE_HASH
#define SCORING_SOURCE_HASH ""
#endif

/* --- buffers --------------------------------------------------------------------------------------------------- */

/* A contiguous one-dimensional buffer of 8-byte items: 'd' (float64) or 'q'/'l' (int64). */
static int
get_buffer(PyObject *obj, Py_buffer *view, char kind, int writable, const char *what)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        return -1;
    }
    const char *format = view->format ? view->format : "B";
    size_t length = strlen(format);
    char code = length ? format[length - 1] : 'B';
    int prefix_ok = length == 1 || (length == 2 && strchr("@=<", format[0]) != NULL);
    int code_ok = kind == 'd' ? code == 'd' : (code == 'q' || code == 'l');
    if (view->itemsize != 8 || view->ndim > 1 || !prefix_ok || !code_ok) {
        PyErr_Format(PyExc_TypeError, "%s: expected a contiguous %s buffer, got format %s", what,
                     kind == 'd' ? "float64" : "int64", format);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* The buffers of a tuple of arrays (the events' ids or values), released by release_buffers. */
static Py_buffer *
get_buffers(PyObject *list, Py_ssize_t count, char kind, const char *what)
{
    Py_buffer *views = PyMem_Calloc(count ? (size_t)count : 1, sizeof(Py_buffer));
    if (views == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (get_buffer(PyTuple_GET_ITEM(list, i), &views[i], kind, 0, what) < 0) {
            for (Py_ssize_t j = 0; j < i; j++) {
                PyBuffer_Release(&views[j]);
            }
            PyMem_Free(views);
            return NULL;
        }
    }
    return views;
}

static void
release_buffers(Py_buffer *views, Py_ssize_t count)
{
    for (Py_ssize_t i = 0; i < count; i++) {
        PyBuffer_Release(&views[i]);
    }
    PyMem_Free(views);
}

static Py_ssize_t
items(const Py_buffer *view)
{
    return view->len / 8;
}

/* The buffers of the events' ids (int64) and values (float64), each event's two of one length, and the longest
 * length (at least 1, the size of a per-event work array): 0, or -1 with an exception set and nothing held. */
static int
get_event_buffers(PyObject *event_ids, PyObject *event_values, Py_ssize_t count, const char *what,
                  Py_buffer **ids_views, Py_buffer **values_views, Py_ssize_t *longest)
{
    *ids_views = get_buffers(event_ids, count, 'q', "event ids");
    if (*ids_views == NULL) {
        return -1;
    }
    *values_views = get_buffers(event_values, count, 'd', "event values");
    if (*values_views == NULL) {
        release_buffers(*ids_views, count);
        return -1;
    }
    *longest = 1;
    for (Py_ssize_t e = 0; e < count; e++) {
        Py_ssize_t length = items(&(*ids_views)[e]);
        if (length != items(&(*values_views)[e])) {
            PyErr_Format(PyExc_ValueError, "%s: an event's ids and values differ in length", what);
            release_buffers(*values_views, count);
            release_buffers(*ids_views, count);
            return -1;
        }
        if (length > *longest) {
            *longest = length;
        }
    }
    return 0;
}

/* --- math.fsum --------------------------------------------------------------------------------------------------- */

typedef struct {
    double *p;
    Py_ssize_t size;
} Partials;

/* CPython's math_fsum over values[0..count), or -1 with an exception set (what math.fsum raises). The partials
 * buffer is the caller's, grown here when needed, so that one allocation serves every event of a call. */
static int
fsum(const double *values, Py_ssize_t count, Partials *partials, double *result)
{
    Py_ssize_t n = 0;
    double special_sum = 0.0, inf_sum = 0.0;
    double x, y, hi, lo = 0.0, yr;
    for (Py_ssize_t k = 0; k < count; k++) {
        double xsave = x = values[k];
        Py_ssize_t i = 0;
        double *p = partials->p;
        for (Py_ssize_t j = 0; j < n; j++) {
            y = p[j];
            if (fabs(x) < fabs(y)) {
                double t = x;
                x = y;
                y = t;
            }
            hi = x + y;
            yr = hi - x;
            lo = y - yr;
            if (lo != 0.0) {
                p[i++] = lo;
            }
            x = hi;
        }
        n = i;
        if (x != 0.0) {
            if (!isfinite(x)) {
                if (isfinite(xsave)) {
                    PyErr_SetString(PyExc_OverflowError, "intermediate overflow in fsum");
                    return -1;
                }
                if (isinf(xsave)) {
                    inf_sum += xsave;
                }
                special_sum += xsave;
                n = 0;
            }
            else {
                if (n >= partials->size) {
                    Py_ssize_t size = partials->size * 2;
                    double *grown = PyMem_Realloc(partials->p, (size_t)size * sizeof(double));
                    if (grown == NULL) {
                        PyErr_NoMemory();
                        return -1;
                    }
                    partials->p = grown;
                    partials->size = size;
                }
                partials->p[n++] = x;
            }
        }
    }
    if (special_sum != 0.0) {
        if (isnan(inf_sum)) {
            PyErr_SetString(PyExc_ValueError, "-inf + inf in fsum");
            return -1;
        }
        *result = special_sum;
        return 0;
    }
    hi = 0.0;
    double *p = partials->p;
    if (n > 0) {
        hi = p[--n];
        /* sum_exact(ps, hi) from the top, stop when the sum becomes inexact */
        while (n > 0) {
            x = hi;
            y = p[--n];
            hi = x + y;
            yr = hi - x;
            lo = y - yr;
            if (lo != 0.0) {
                break;
            }
        }
        /* half-even rounding: make it exact when the remaining partials push it over a halfway case */
        if (n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0))) {
            y = lo * 2.0;
            x = hi + y;
            yr = x - hi;
            if (y == yr) {
                hi = x;
            }
        }
    }
    *result = hi;
    return 0;
}

static int
partials_init(Partials *partials)
{
    partials->size = 32;
    partials->p = PyMem_Malloc(32 * sizeof(double));
    if (partials->p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* --- np.add.reduce --------------------------------------------------------------------------------------------- */

#define PW_BLOCKSIZE 128

/* NumPy's DOUBLE_pairwise_sum (numpy/_core/src/umath/loops_utils.h.src) over a contiguous array. */
static double
pairwise_sum(const double *a, Py_ssize_t n)
{
    if (n < 8) {
        double res = 0.;
        for (Py_ssize_t i = 0; i < n; i++) {
            res += a[i];
        }
        return res;
    }
    else if (n <= PW_BLOCKSIZE) {
        double r[8], res;
        Py_ssize_t i;
        for (int j = 0; j < 8; j++) {
            r[j] = a[j];
        }
        for (i = 8; i < n - (n % 8); i += 8) {
            for (int j = 0; j < 8; j++) {
                r[j] += a[i + j];
            }
        }
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) {
            res += a[i];
        }
        return res;
    }
    else {
        Py_ssize_t n2 = n / 2;
        n2 -= n2 % 8;
        return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
    }
}

/* np.add.reduce of a one-dimensional float64 array, as the installed NumPy computes it: the reduction starts from
 * the identity 0.0 and the add loop adds the pairwise sum of the whole array to it (so [-0.0] sums to 0.0).
 * tests/unit/test_scoring_kernel.py checks this against np.add.reduce over many lengths. */
static double
add_reduce(const double *a, Py_ssize_t n)
{
    double total = 0.0;
    total += pairwise_sum(a, n);
    return total;
}

/* --- Python functions ---------------------------------------------------------------------------------------------- */

PyDoc_STRVAR(dots_doc,
"dots(event_ids, event_values, article_ids, article_values, article_idf2, weights, squares, scaled) -> list\n\n"
"For each event (its key-sorted int64 ids and float64 values): math.fsum over the keys it shares with the article\n"
"of (article value * event value) * idf2 (scaled) or event value * idf2 (not scaled). article_ids holds the\n"
"article's vocabulary ids (-1: a key no event has), article_values its float64 values (None: ones), article_idf2\n"
"the idf ** 2 of each key. weights and squares are zero float64 scratch arrays indexed by id, left zero.");

static PyObject *
dots_impl(PyObject *module, PyObject *args)
{
    PyObject *event_ids, *event_values, *article_ids, *article_values, *article_idf2, *weights_obj, *squares_obj;
    int scaled;
    if (!PyArg_ParseTuple(args, "O!O!O!OO!OOp", &PyTuple_Type, &event_ids, &PyTuple_Type, &event_values,
                          &PyTuple_Type, &article_ids, &article_values, &PyTuple_Type, &article_idf2, &weights_obj,
                          &squares_obj, &scaled)) {
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(event_ids);
    Py_ssize_t keys = PyTuple_GET_SIZE(article_ids);
    if (PyTuple_GET_SIZE(event_values) != count || PyTuple_GET_SIZE(article_idf2) != keys) {
        PyErr_SetString(PyExc_ValueError, "dots: lists of different lengths");
        return NULL;
    }
    PyObject *result = NULL;
    Py_buffer weights_view, squares_view, article_view;
    int have_article = article_values != Py_None;
    Py_ssize_t *scattered = NULL;
    Py_ssize_t scattered_count = 0;
    double *products = NULL;
    Partials partials = {NULL, 0};
    Py_buffer *ids_views = NULL, *values_views = NULL;
    if (get_buffer(weights_obj, &weights_view, 'd', 1, "weights") < 0) {
        return NULL;
    }
    if (get_buffer(squares_obj, &squares_view, 'd', 1, "squares") < 0) {
        PyBuffer_Release(&weights_view);
        return NULL;
    }
    if (have_article && get_buffer(article_values, &article_view, 'd', 0, "article_values") < 0) {
        goto done_scratch;
    }
    Py_ssize_t size = items(&weights_view);
    double *weights = weights_view.buf, *squares = squares_view.buf;
    if (items(&squares_view) != size || (have_article && items(&article_view) != keys)) {
        PyErr_SetString(PyExc_ValueError, "dots: scratch or article arrays of the wrong length");
        goto done_article;
    }
    scattered = PyMem_Malloc((keys ? (size_t)keys : 1) * sizeof(Py_ssize_t));
    if (scattered == NULL) {
        PyErr_NoMemory();
        goto done_article;
    }
    /* the article's values and idf ** 2 scattered by id: a key is shared with an event where its weight is not 0 */
    for (Py_ssize_t k = 0; k < keys; k++) {
        long long id = PyLong_AsLongLong(PyTuple_GET_ITEM(article_ids, k));
        if (id == -1 && PyErr_Occurred()) {
            goto done_scatter;
        }
        if (id < 0) {
            continue;
        }
        if (id >= size) {
            PyErr_SetString(PyExc_IndexError, "dots: article id beyond the scratch arrays");
            goto done_scatter;
        }
        double square = PyFloat_AsDouble(PyTuple_GET_ITEM(article_idf2, k));
        if (square == -1.0 && PyErr_Occurred()) {
            goto done_scatter;
        }
        weights[id] = have_article ? ((const double *)article_view.buf)[k] : 1.0;
        squares[id] = square;
        scattered[scattered_count++] = (Py_ssize_t)id;
    }
    Py_ssize_t longest;
    if (get_event_buffers(event_ids, event_values, count, "dots", &ids_views, &values_views, &longest) < 0) {
        goto done_scatter;
    }
    products = PyMem_Malloc((size_t)longest * sizeof(double));
    if (products == NULL || partials_init(&partials) < 0) {
        if (products == NULL) {
            PyErr_NoMemory();
        }
        goto done_values;
    }
    result = PyList_New(count);
    if (result == NULL) {
        goto done_values;
    }
    for (Py_ssize_t e = 0; e < count; e++) {
        const int64_t *ids = ids_views[e].buf;
        const double *values = values_views[e].buf;
        Py_ssize_t length = items(&ids_views[e]), shared = 0;
        for (Py_ssize_t k = 0; k < length; k++) {
            int64_t id = ids[k];
            if (id < 0 || id >= size) {
                PyErr_SetString(PyExc_IndexError, "dots: event id beyond the scratch arrays");
                Py_CLEAR(result);
                goto done_values;
            }
            double weight = weights[id];
            if (weight != 0.0) {
                products[shared++] = scaled ? (weight * values[k]) * squares[id] : values[k] * squares[id];
            }
        }
        double dot;
        if (fsum(products, shared, &partials, &dot) < 0) {
            Py_CLEAR(result);
            goto done_values;
        }
        PyObject *value = PyFloat_FromDouble(dot);
        if (value == NULL) {
            Py_CLEAR(result);
            goto done_values;
        }
        PyList_SET_ITEM(result, e, value);
    }
done_values:
    release_buffers(values_views, count);
    release_buffers(ids_views, count);
done_scatter:
    for (Py_ssize_t k = 0; k < scattered_count; k++) {
        weights[scattered[k]] = 0.0;
        squares[scattered[k]] = 0.0;
    }
    PyMem_Free(scattered);
    PyMem_Free(products);
    PyMem_Free(partials.p);
done_article:
    if (have_article) {
        PyBuffer_Release(&article_view);
    }
done_scratch:
    PyBuffer_Release(&squares_view);
    PyBuffer_Release(&weights_view);
    return result;
}

/* The position of value in the ascending sorted[0..count), or -1. */
static Py_ssize_t
find(const int64_t *sorted, Py_ssize_t count, int64_t value)
{
    Py_ssize_t low = 0, high = count;
    while (low < high) {
        Py_ssize_t middle = low + (high - low) / 2;
        if (sorted[middle] < value) {
            low = middle + 1;
        }
        else {
            high = middle;
        }
    }
    return low < count && sorted[low] == value ? low : -1;
}

/* frequencies()'s marks by document frequency, zero between calls (the GIL is held throughout, as for the
 * clusterer's scratch arrays) */
static unsigned char *seen = NULL;
static Py_ssize_t seen_size = 0;

static int
compare_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

PyDoc_STRVAR(frequencies_doc,
"frequencies(event_ids, dots, frequencies) -> list\n\n"
"The sorted distinct document frequencies (frequencies[id], int64 by id) of the keys of the events whose dot is\n"
"not 0: the IDF values norms() needs. Its work is the size of those events, whatever the number of live articles.");

static PyObject *
frequencies_impl(PyObject *module, PyObject *args)
{
    PyObject *event_ids, *dots, *frequencies_obj;
    if (!PyArg_ParseTuple(args, "O!O!O", &PyTuple_Type, &event_ids, &PyTuple_Type, &dots, &frequencies_obj)) {
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(event_ids);
    if (PyTuple_GET_SIZE(dots) != count) {
        PyErr_SetString(PyExc_ValueError, "frequencies: lists of different lengths");
        return NULL;
    }
    PyObject *result = NULL;
    Py_buffer frequencies_view;
    Py_buffer *ids_views = NULL;
    int64_t *found = NULL;
    if (get_buffer(frequencies_obj, &frequencies_view, 'q', 0, "frequencies") < 0) {
        return NULL;
    }
    const int64_t *frequencies = frequencies_view.buf;
    Py_ssize_t vocabulary = items(&frequencies_view), total = 0, distinct = 0;
    ids_views = get_buffers(event_ids, count, 'q', "event ids");
    if (ids_views == NULL) {
        goto done_frequencies;
    }
    for (Py_ssize_t e = 0; e < count; e++) {
        total += items(&ids_views[e]);
    }
    found = PyMem_Malloc((total ? (size_t)total : 1) * sizeof(int64_t));
    if (found == NULL) {
        PyErr_NoMemory();
        goto done_ids;
    }
    /* each frequency once, marked in a table by frequency that only grows (to the largest frequency seen, at most the
     * live article count) and is cleared at the marked positions only: the work is the events' keys, and the sort is
     * of the distinct frequencies (a handful: most keys share a few small ones) */
    for (Py_ssize_t e = 0; e < count; e++) {
        double dot = PyFloat_AsDouble(PyTuple_GET_ITEM(dots, e));
        if (dot == -1.0 && PyErr_Occurred()) {
            goto done_found;
        }
        if (dot == 0.0) {
            continue;
        }
        const int64_t *ids = ids_views[e].buf;
        for (Py_ssize_t k = 0; k < items(&ids_views[e]); k++) {
            int64_t id = ids[k];
            if (id < 0 || id >= vocabulary || frequencies[id] < 0 || frequencies[id] >= PY_SSIZE_T_MAX / 4) {
                PyErr_SetString(PyExc_IndexError, "frequencies: id beyond the frequencies, or a frequency out of range");
                goto done_found;
            }
            int64_t frequency = frequencies[id];
            if (frequency >= seen_size) {
                Py_ssize_t size = seen_size ? seen_size : 1024;
                while (size <= frequency) {
                    size *= 2;
                }
                unsigned char *grown = PyMem_Realloc(seen, (size_t)size);
                if (grown == NULL) {
                    PyErr_NoMemory();
                    goto done_found;
                }
                memset(grown + seen_size, 0, (size_t)(size - seen_size));
                seen = grown;
                seen_size = size;
            }
            if (!seen[frequency]) {
                seen[frequency] = 1;
                found[distinct++] = frequency;
            }
        }
    }
    qsort(found, (size_t)distinct, sizeof(int64_t), compare_int64);
    result = PyList_New(distinct);
    if (result == NULL) {
        goto done_found;
    }
    for (Py_ssize_t i = 0; i < distinct; i++) {
        PyObject *value = PyLong_FromLongLong(found[i]);
        if (value == NULL) {
            Py_CLEAR(result);
            goto done_found;
        }
        PyList_SET_ITEM(result, i, value);
    }
done_found:
    for (Py_ssize_t i = 0; i < distinct; i++) {
        seen[found[i]] = 0;
    }
    PyMem_Free(found);
done_ids:
    release_buffers(ids_views, count);
done_frequencies:
    PyBuffer_Release(&frequencies_view);
    return result;
}

PyDoc_STRVAR(norms_doc,
"norms(event_ids, event_values, dots, frequencies, needed, idf) -> list\n\n"
"For each event whose dot is not 0: sqrt(np.add.reduce((values * idf[f]) ** 2)) over its key-sorted int64 ids and\n"
"float64 values, where f is the position of the key's document frequency (frequencies[id], int64 by id) in needed\n"
"(the sorted distinct frequencies, as frequencies() returns them); 0.0 for the others. idf holds the IDF of each\n"
"needed frequency (float64, computed by NumPy).");

static PyObject *
norms_impl(PyObject *module, PyObject *args)
{
    PyObject *event_ids, *event_values, *dots, *frequencies_obj, *needed_obj, *idf_obj;
    if (!PyArg_ParseTuple(args, "O!O!O!OOO", &PyTuple_Type, &event_ids, &PyTuple_Type, &event_values, &PyTuple_Type,
                          &dots, &frequencies_obj, &needed_obj, &idf_obj)) {
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(event_ids);
    if (PyTuple_GET_SIZE(event_values) != count || PyTuple_GET_SIZE(dots) != count) {
        PyErr_SetString(PyExc_ValueError, "norms: lists of different lengths");
        return NULL;
    }
    PyObject *result = NULL;
    Py_buffer frequencies_view, needed_view, idf_view;
    Py_buffer *ids_views = NULL, *values_views = NULL;
    double *squares = NULL;
    if (get_buffer(frequencies_obj, &frequencies_view, 'q', 0, "frequencies") < 0) {
        return NULL;
    }
    if (get_buffer(needed_obj, &needed_view, 'q', 0, "needed") < 0) {
        goto done_frequencies;
    }
    if (get_buffer(idf_obj, &idf_view, 'd', 0, "idf") < 0) {
        goto done_needed;
    }
    const int64_t *frequencies = frequencies_view.buf, *needed = needed_view.buf;
    const double *idf = idf_view.buf;
    Py_ssize_t vocabulary = items(&frequencies_view), table = items(&needed_view);
    if (items(&idf_view) != table) {
        PyErr_SetString(PyExc_ValueError, "norms: needed and idf differ in length");
        goto done_idf;
    }
    Py_ssize_t longest;
    if (get_event_buffers(event_ids, event_values, count, "norms", &ids_views, &values_views, &longest) < 0) {
        goto done_idf;
    }
    squares = PyMem_Malloc((size_t)longest * sizeof(double));
    if (squares == NULL) {
        PyErr_NoMemory();
        goto done_values;
    }
    result = PyList_New(count);
    if (result == NULL) {
        goto done_values;
    }
    for (Py_ssize_t e = 0; e < count; e++) {
        double dot = PyFloat_AsDouble(PyTuple_GET_ITEM(dots, e));
        if (dot == -1.0 && PyErr_Occurred()) {
            Py_CLEAR(result);
            goto done_values;
        }
        const int64_t *ids = ids_views[e].buf;
        const double *values = values_views[e].buf;
        Py_ssize_t length = items(&ids_views[e]);
        double norm = 0.0;
        if (dot != 0.0 && length > 0) {
            for (Py_ssize_t k = 0; k < length; k++) {
                int64_t id = ids[k];
                Py_ssize_t at = id < 0 || id >= vocabulary ? -1 : find(needed, table, frequencies[id]);
                if (at < 0) {
                    PyErr_SetString(PyExc_IndexError, "norms: id beyond the frequencies or frequency not needed");
                    Py_CLEAR(result);
                    goto done_values;
                }
                double weighted = values[k] * idf[at];
                squares[k] = weighted * weighted;
            }
            norm = sqrt(add_reduce(squares, length));
        }
        PyObject *value = PyFloat_FromDouble(norm);
        if (value == NULL) {
            Py_CLEAR(result);
            goto done_values;
        }
        PyList_SET_ITEM(result, e, value);
    }
done_values:
    PyMem_Free(squares);
    release_buffers(values_views, count);
    release_buffers(ids_views, count);
done_idf:
    PyBuffer_Release(&idf_view);
done_needed:
    PyBuffer_Release(&needed_view);
done_frequencies:
    PyBuffer_Release(&frequencies_view);
    return result;
}

static int
compare_descending(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

PyDoc_STRVAR(hits_doc,
"hits(postings, weights, totals, max_posting, max_candidates) -> (slots, negated_totals)\n\n"
"Each posting (an int64 array of event slots) of a size in 1..max_posting adds its key's weight to the total of\n"
"each of its slots, one by one in key order from 0.0 (as np.add.at). The slots with a non-zero total, keeping only\n"
"those at least the max_candidates-th largest total (ties included), with their totals negated. totals is a zero\n"
"float64 scratch array indexed by slot, left zero.");

static PyObject *
hits_impl(PyObject *module, PyObject *args)
{
    PyObject *postings, *weights, *totals_obj;
    Py_ssize_t max_posting, max_candidates;
    if (!PyArg_ParseTuple(args, "O!O!Onn", &PyTuple_Type, &postings, &PyTuple_Type, &weights, &totals_obj,
                          &max_posting, &max_candidates)) {
        return NULL;
    }
    Py_ssize_t keys = PyTuple_GET_SIZE(postings);
    if (PyTuple_GET_SIZE(weights) != keys) {
        PyErr_SetString(PyExc_ValueError, "hits: postings and weights differ in length");
        return NULL;
    }
    Py_buffer totals_view;
    if (get_buffer(totals_obj, &totals_view, 'd', 1, "totals") < 0) {
        return NULL;
    }
    double *totals = totals_view.buf;
    Py_ssize_t size = items(&totals_view);
    PyObject *result = NULL, *slots_list = NULL, *totals_list = NULL;
    Py_ssize_t touched_count = 0, touched_size = 64, hit_count = 0;
    Py_ssize_t *touched = PyMem_Malloc((size_t)touched_size * sizeof(Py_ssize_t));
    double *sorted_totals = NULL;
    if (touched == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < keys; k++) {
        Py_buffer view;
        if (get_buffer(PyTuple_GET_ITEM(postings, k), &view, 'q', 0, "posting") < 0) {
            goto done;
        }
        Py_ssize_t length = items(&view);
        if (length < 1 || length > max_posting) {
            PyBuffer_Release(&view);
            continue;
        }
        double weight = PyFloat_AsDouble(PyTuple_GET_ITEM(weights, k));
        if (weight == -1.0 && PyErr_Occurred()) {
            PyBuffer_Release(&view);
            goto done;
        }
        const int64_t *slots = view.buf;
        for (Py_ssize_t i = 0; i < length; i++) {
            int64_t slot = slots[i];
            if (slot < 0 || slot >= size) {
                PyBuffer_Release(&view);
                PyErr_SetString(PyExc_IndexError, "hits: slot beyond the totals array");
                goto done;
            }
            if (totals[slot] == 0.0) {
                /* may be listed twice (a total back at zero); the collection below counts each slot once */
                if (touched_count == touched_size) {
                    touched_size *= 2;
                    Py_ssize_t *grown = PyMem_Realloc(touched, (size_t)touched_size * sizeof(Py_ssize_t));
                    if (grown == NULL) {
                        PyBuffer_Release(&view);
                        PyErr_NoMemory();
                        goto done;
                    }
                    touched = grown;
                }
                touched[touched_count++] = (Py_ssize_t)slot;
            }
            totals[slot] += weight;
        }
        PyBuffer_Release(&view);
    }
    /* the non-zero totals, each slot once: a slot's total is zeroed as it is collected, so a slot listed twice (its
     * total back at zero once, possible only with weights of both signs) is collected once */
    sorted_totals = PyMem_Malloc((touched_count ? (size_t)touched_count : 1) * 2 * sizeof(double));
    if (sorted_totals == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    double *hit_totals = sorted_totals + (touched_count ? touched_count : 1);
    for (Py_ssize_t i = 0; i < touched_count; i++) {
        Py_ssize_t slot = touched[i];
        double total = totals[slot];
        if (total != 0.0) {
            totals[slot] = 0.0;
            touched[hit_count] = slot; /* hit_count <= i: an entry already read */
            hit_totals[hit_count] = sorted_totals[hit_count] = total;
            hit_count++;
        }
    }
    /* max_candidates < 1 keeps every hit here, where the Python path fails in np.partition: ClusteringConfig
     * refuses it (max_candidates >= 1), so the clusterer never passes it */
    double cut = -INFINITY;
    if (hit_count > max_candidates && max_candidates > 0) {
        qsort(sorted_totals, (size_t)hit_count, sizeof(double), compare_descending);
        cut = sorted_totals[max_candidates - 1];
    }
    slots_list = PyList_New(0);
    totals_list = PyList_New(0);
    if (slots_list == NULL || totals_list == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < hit_count; i++) {
        double total = hit_totals[i];
        if (total >= cut) {
            PyObject *slot = PyLong_FromSsize_t(touched[i]);
            PyObject *negated = PyFloat_FromDouble(-total);
            int failed = slot == NULL || negated == NULL || PyList_Append(slots_list, slot) < 0 ||
                         PyList_Append(totals_list, negated) < 0;
            Py_XDECREF(slot);
            Py_XDECREF(negated);
            if (failed) {
                goto done;
            }
        }
    }
    result = PyTuple_Pack(2, slots_list, totals_list);
done:
    if (touched != NULL && sorted_totals == NULL) {
        /* an error before the collection above, which zeroes every total it reads */
        for (Py_ssize_t i = 0; i < touched_count; i++) {
            totals[touched[i]] = 0.0;
        }
    }
    PyMem_Free(touched);
    PyMem_Free(sorted_totals);
    Py_XDECREF(slots_list);
    Py_XDECREF(totals_list);
    PyBuffer_Release(&totals_view);
    return result;
}

PyDoc_STRVAR(fsum_doc, "fsum(values) -> float\n\nmath.fsum of a float64 buffer (for tests of the port).");

static PyObject *
scoring_fsum(PyObject *module, PyObject *obj)
{
    Py_buffer view;
    if (get_buffer(obj, &view, 'd', 0, "values") < 0) {
        return NULL;
    }
    Partials partials;
    double total;
    PyObject *result = NULL;
    if (partials_init(&partials) == 0) {
        if (fsum(view.buf, items(&view), &partials, &total) == 0) {
            result = PyFloat_FromDouble(total);
        }
        PyMem_Free(partials.p);
    }
    PyBuffer_Release(&view);
    return result;
}

PyDoc_STRVAR(add_reduce_doc,
"add_reduce(values) -> float\n\nnp.add.reduce of a float64 buffer (for tests of the port).");

static PyObject *
scoring_add_reduce(PyObject *module, PyObject *obj)
{
    Py_buffer view;
    if (get_buffer(obj, &view, 'd', 0, "values") < 0) {
        return NULL;
    }
    double total = add_reduce(view.buf, items(&view));
    PyBuffer_Release(&view);
    return PyFloat_FromDouble(total);
}

/* The function impl called with args whose lists are copied into tuples, which hold their items: reading an
 * item can run Python code (__index__, __float__, __buffer__), and that code cannot then shrink what is read. */
static PyObject *
with_tuples(PyObject *(*impl)(PyObject *, PyObject *), PyObject *module, PyObject *args)
{
    Py_ssize_t count = PyTuple_GET_SIZE(args);
    PyObject *copied = PyTuple_New(count);
    if (copied == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyTuple_GET_ITEM(args, i);
        PyObject *held = PyList_Check(item) ? PyList_AsTuple(item) : Py_NewRef(item);
        if (held == NULL) {
            Py_DECREF(copied);
            return NULL;
        }
        PyTuple_SET_ITEM(copied, i, held);
    }
    PyObject *result = impl(module, copied);
    Py_DECREF(copied);
    return result;
}

static PyObject *
scoring_dots(PyObject *module, PyObject *args)
{
    return with_tuples(dots_impl, module, args);
}

static PyObject *
scoring_frequencies(PyObject *module, PyObject *args)
{
    return with_tuples(frequencies_impl, module, args);
}

static PyObject *
scoring_norms(PyObject *module, PyObject *args)
{
    return with_tuples(norms_impl, module, args);
}

static PyObject *
scoring_hits(PyObject *module, PyObject *args)
{
    return with_tuples(hits_impl, module, args);
}

static PyMethodDef scoring_methods[] = {
    {"dots", scoring_dots, METH_VARARGS, dots_doc},
    {"frequencies", scoring_frequencies, METH_VARARGS, frequencies_doc},
    {"norms", scoring_norms, METH_VARARGS, norms_doc},
    {"hits", scoring_hits, METH_VARARGS, hits_doc},
    {"fsum", scoring_fsum, METH_O, fsum_doc},
    {"add_reduce", scoring_add_reduce, METH_O, add_reduce_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef scoring_module = {
    PyModuleDef_HEAD_INIT, "_scoring",
    "C kernel of candidate scoring for transform.clustering (see transform.scoring).", -1, scoring_methods,
};

PyMODINIT_FUNC
PyInit__scoring(void)
{
    PyObject *module = PyModule_Create(&scoring_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddIntConstant(module, "ABI", SCORING_ABI) < 0 ||
        PyModule_AddStringConstant(module, "SOURCE_HASH", SCORING_SOURCE_HASH) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
