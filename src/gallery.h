/* gallery.h - the persistent gallery: enrolled items and their embeddings in
 * SQLite, searched through an in-memory index (private).
 *
 * What it is: a file (an SQLite database) holding, per item, an id, a label,
 * an optional source path, the SHA-256 of the image file it came from, and
 * its embedding; plus what the embeddings mean (the identity of the model
 * that made them, their dimension and storage type). Enrolling and removing
 * are transactions; searching reads every embedding into memory once and
 * runs index.h's exact or int8 search or an HNSW graph (hnsw.h) kept in a
 * file beside the gallery.
 * What it refuses to be: an image decoder or a model. Callers embed (the CLI
 * and the service do), the gallery stores and searches L2-normalised vectors.
 *
 * File (docs/formats.md, "Gallery"):
 *   PRAGMA application_id = 0x534D474C ("SMGL"), PRAGMA user_version = 1
 *   (SM_GALLERY_SCHEMA), journal_mode = WAL;
 *   meta(key TEXT PRIMARY KEY, value TEXT) holding format = "simile-gallery",
 *     format_version, model_id (64 hex digits), model_name, dim, dtype
 *     ("float32" | "int8"), generation, uuid, created, and once calibrated
 *     threshold, threshold_far, threshold_tar, threshold_data;
 *   items(id INTEGER PRIMARY KEY AUTOINCREMENT, label TEXT NOT NULL,
 *     source TEXT, content_hash TEXT UNIQUE, embedding BLOB NOT NULL,
 *     created INTEGER NOT NULL).
 *   embedding: float32 galleries dim little-endian float32; int8 galleries a
 *   little-endian float32 scale then dim int8 codes (index.h's quantisation,
 *   4x smaller). Ids are never reused (AUTOINCREMENT), so a saved HNSW graph
 *   that names ids cannot silently point at a different item.
 *
 * Durability: WAL with synchronous = FULL. In WAL mode NORMAL is already safe
 * against a crash of the process (kill -9: the WAL keeps every committed
 * transaction and recovery drops the uncommitted tail), but after a power
 * loss it may lose the last transactions that were reported committed. An
 * enroll is a user action whose success the CLI reports, and it is one
 * transaction for many items, so FULL costs one WAL fsync per enroll, not per
 * item: we take FULL.
 *
 * Every change bumps the meta generation counter in its own transaction, and
 * an HNSW file records the generation (with the gallery's uuid and model
 * identity) it was built from: a graph with another stamp is stale and is
 * rebuilt from the store.
 *
 * Errors never change the file: opening checks everything before any write
 * (a file that is not a gallery, of a newer format, damaged, of another
 * model), and enroll/remove run in one transaction that is rolled back on
 * any error. A handle is used by one thread at a time. */
#ifndef SM_GALLERY_H
#define SM_GALLERY_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "simile.h"

/* Schema version (PRAGMA user_version and meta format_version). */
#define SM_GALLERY_SCHEMA 1
/* PRAGMA application_id of a gallery: "SMGL". */
#define SM_GALLERY_APP_ID 0x534D474C
/* Galleries at least this large use HNSW under SM_GALLERY_INDEX_AUTO. */
#define SM_GALLERY_HNSW_MIN 100000

/* ------------------------------------------------------------------ SHA-256 */

/* SHA-256 (FIPS 180-4), for content hashes and model identities. */
typedef struct sm_sha256 {
    uint32_t h[8];
    uint64_t len;        /* bytes hashed so far */
    uint8_t buf[64];
    size_t nbuf;
} sm_sha256;

void sm_sha256_init(sm_sha256 *s);
void sm_sha256_update(sm_sha256 *s, const void *p, size_t n);
void sm_sha256_final(sm_sha256 *s, uint8_t out[32]);
/* out = 64 lower-case hex digits + NUL. */
void sm_hex(char *out, const uint8_t *bytes, size_t n);
/* SHA-256 of a whole file. Errors: SM_ERR_IO naming the file. */
sm_status sm_sha256_file(const char *path, uint8_t out[32], sm_err *err);

/* --------------------------------------------------------------- identity */

/* The identity of a model: SHA-256 over a tag and version, the spec text,
 * the head (kind, classes, scale, margin, easy_margin), the input
 * normalisation, and every tensor of sm_model_tensor in order (name, shape,
 * little-endian float32 bytes). Two checkpoints have the same identity iff
 * they embed identically (up to a hash collision); the class names and the
 * training state do not count. Never fails for a valid model. */
void sm_model_identity(sm_model *m, uint8_t out[32]);

/* ------------------------------------------------------------------ gallery */

typedef struct sm_gallery sm_gallery;

typedef enum sm_gallery_dtype { SM_GALLERY_F32 = 0, SM_GALLERY_I8 = 1 } sm_gallery_dtype;

/* What the embeddings of a gallery come from. */
typedef struct sm_gallery_model {
    uint8_t id[32];       /* sm_model_identity */
    int64_t dim;          /* embedding size */
    const char *name;     /* shown in messages (the checkpoint path); may be NULL */
} sm_gallery_model;

typedef struct sm_gallery_options {
    bool create;              /* create the gallery if path does not exist (needs a model) */
    sm_gallery_dtype dtype;   /* storage of a new gallery's embeddings */
    bool readonly;            /* open read-only (search, items) */
} sm_gallery_options;

/* Opens (or, with opts->create, creates) the gallery at path. With a model,
 * the gallery must have been built with that model (identity and dim);
 * without (NULL) any gallery opens, for listing and removing.
 * A new gallery is created complete in a temporary file and linked into
 * place, so a crash never leaves a half-made one; two processes creating the
 * same path at once both end up with the one that got there first.
 * *out is owned by the caller (sm_gallery_close). opts may be NULL (open an
 * existing gallery read-write).
 * Errors: SM_ERR_IO (no such file without create, permission, cannot
 * create), SM_ERR_FORMAT ("not a simile gallery": not SQLite, another
 * application's database, schema newer than this simile, missing meta;
 * damaged: SQLite reports corruption), SM_ERR_ARG (another model: "gallery
 * 'G' was built with model X (name, D-d); this is model Y (name, D-d)",
 * create without a model, a gallery busy beyond the 5 s lock timeout),
 * SM_ERR_SHAPE (same model identity, other dim), SM_ERR_NOMEM.
 * The file is never written on failure. */
sm_status sm_gallery_open(sm_gallery **out, const char *path, const sm_gallery_model *model,
                          const sm_gallery_options *opts, sm_err *err);

/* Closes the database and frees everything. NULL is a no-op. */
void sm_gallery_close(sm_gallery *g);

typedef struct sm_gallery_info {
    int64_t count;           /* items */
    int64_t dim;
    sm_gallery_dtype dtype;
    int64_t generation;
    char model_id[65];       /* hex */
    char model_name[256];
    char uuid[33];           /* hex */
    bool has_threshold;
    float threshold;         /* accept iff similarity > threshold */
    double threshold_far, threshold_tar;
} sm_gallery_info;

/* Counts and meta of the gallery as of now. Errors: SM_ERR_FORMAT/IO from SQLite. */
sm_status sm_gallery_info_get(sm_gallery *g, sm_gallery_info *info, sm_err *err);

/* One item to enroll. */
typedef struct sm_gallery_item {
    const char *label;          /* non-empty UTF-8 */
    const char *source;         /* where it came from (an image path); may be NULL */
    const uint8_t *content;     /* SHA-256 of the image file (32 bytes); NULL: no dedup */
    const float *embedding;     /* dim floats, finite, not all zero; stored L2-normalised */
} sm_gallery_item;

/* Enrolls items[0..n) in ONE transaction: all of them or (on any error)
 * none. An item whose content hash is already in the gallery with the same
 * label is not added again (its existing id is returned): enrolling the
 * same image twice is idempotent. The same image under another label is an
 * error (remove it first). ids (n, may be NULL) receives each item's id,
 * *added (may be NULL) how many rows were new. The generation is bumped
 * when any row is new. The in-memory index follows.
 * Errors: SM_ERR_CONFLICT (the same image under another label), SM_ERR_ARG
 * (empty label, n < 0, readonly), SM_ERR_NAN (a non-finite or zero embedding), SM_ERR_IO (disk
 * full, lock timeout), SM_ERR_NOMEM. */
sm_status sm_gallery_enroll(sm_gallery *g, const sm_gallery_item *items, int64_t n, int64_t *ids,
                            int64_t *added, sm_err *err);

/* Removes the items ids[0..n) in one transaction. An id that is not in the
 * gallery is an error and nothing is removed. Bumps the generation.
 * Errors: SM_ERR_ARG (unknown id, readonly), SM_ERR_IO. */
sm_status sm_gallery_remove(sm_gallery *g, const int64_t *ids, int64_t n, sm_err *err);

/* One listed item; strings owned by the array (sm_gallery_entries_free). */
typedef struct sm_gallery_entry {
    int64_t id;
    char *label;
    char *source;           /* NULL when none */
    char content[65];       /* hex SHA-256, "" when none */
    int64_t created;        /* unix seconds */
} sm_gallery_entry;

/* Items with id > after_id in id order, at most limit (>= 1) of them: a page.
 * *out (malloc'd, *n entries; NULL when 0) is owned by the caller.
 * Errors: SM_ERR_ARG (limit < 1), SM_ERR_IO/FORMAT from SQLite, SM_ERR_NOMEM. */
sm_status sm_gallery_items(sm_gallery *g, int64_t after_id, int64_t limit, sm_gallery_entry **out, int64_t *n,
                           sm_err *err);
/* The item with this id into *out (its strings then belong to *out: release
 * them with sm_gallery_entry_clear); *found says whether it exists (when not,
 * *out is zeroed). Errors: SM_ERR_IO/FORMAT from SQLite, SM_ERR_NOMEM. */
sm_status sm_gallery_get(sm_gallery *g, int64_t id, sm_gallery_entry *out, bool *found, sm_err *err);
void sm_gallery_entry_clear(sm_gallery_entry *e);
void sm_gallery_entries_free(sm_gallery_entry *e, int64_t n);

typedef enum sm_gallery_index {
    SM_GALLERY_INDEX_AUTO = 0, /* float32: exact below SM_GALLERY_HNSW_MIN items, else HNSW; int8: int8 */
    SM_GALLERY_INDEX_EXACT,    /* float32 scan/GEMM; on an int8 gallery the int8 scan (the codes are all there is) */
    SM_GALLERY_INDEX_INT8,     /* int8 scan (float32 galleries quantise in memory; rerank with the floats) */
    SM_GALLERY_INDEX_HNSW      /* HNSW graph from G.hnsw, rebuilt when stale */
} sm_gallery_index;

typedef struct sm_gallery_search_opts {
    sm_gallery_index index;
    int64_t ef;        /* HNSW search list (0: 64) */
    int64_t rerank;    /* INT8 on a float32 gallery: re-score this many with floats (0: none) */
    int64_t hnsw_m;    /* HNSW build: M (0: 16) */
    int64_t hnsw_efc;  /* HNSW build: efConstruction (0: 200) */
} sm_gallery_search_opts;

/* Top-k items for each query q (nq, d): ids (nq, k) item ids (-1 past the
 * end), sims (nq, k) cosine similarities, best first, ties to the lower id
 * (items sit in memory in id order). Queries are L2-normalised here. opts
 * may be NULL (AUTO).
 * The embeddings are read from SQLite at the first search after open and
 * again when another connection has changed the gallery.
 * Errors: SM_ERR_ARG (k < 1 or too large, nq < 0), SM_ERR_SHAPE (d != the
 * gallery's dim), SM_ERR_NAN (a query not finite or zero), SM_ERR_FORMAT (a
 * damaged embedding row), SM_ERR_NOMEM. */
sm_status sm_gallery_search(sm_gallery *g, const float *q, int64_t nq, int64_t d, int64_t k,
                            const sm_gallery_search_opts *opts, int64_t *ids, float *sims, sm_err *err);

/* Makes sure the index kind opts->index is ready (loads the embeddings;
 * for HNSW loads G.hnsw or, when missing, stale or damaged, rebuilds it and
 * saves it unless readonly). *note (may be NULL) receives a one-line
 * description of what happened ("HNSW index rebuilt: stale (generation 7,
 * gallery at 9)"), "" when nothing worth saying. sm_gallery_search calls it.
 * Errors: those of the search, SM_ERR_IO (saving the graph). */
sm_status sm_gallery_prepare(sm_gallery *g, const sm_gallery_search_opts *opts, char *note, size_t note_cap,
                             sm_err *err);

/* Path of the HNSW file beside the gallery ("<path>.hnsw"), owned by g. */
const char *sm_gallery_hnsw_path(const sm_gallery *g);

/* Stores the open-set threshold (accept iff similarity > t) with the FAR and
 * TAR it was calibrated at and a free-text description of the data, in one
 * transaction. Does not bump the generation (the index is unaffected).
 * Errors: SM_ERR_ARG (t not finite, readonly), SM_ERR_IO. */
sm_status sm_gallery_set_threshold(sm_gallery *g, float t, double far, double tar, const char *data, sm_err *err);

#endif
