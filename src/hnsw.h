/* hnsw.h - a hierarchical navigable small world graph for approximate
 * nearest-neighbour search by inner product (private).
 *
 * The algorithm of Malkov & Yashunin, "Efficient and robust approximate
 * nearest neighbor search using Hierarchical Navigable Small World graphs"
 * (TPAMI 2018, arXiv:1603.09320), as hnswlib implements it (hnswalg.h):
 *   - node levels are floor(-ln(U) * mL), U uniform in (0, 1], mL = 1/ln(M);
 *   - upper levels keep at most M links per node, level 0 at most M0 = 2M;
 *   - insertion: greedy descent from the entry point down to the node's level,
 *     then on each level a best-first search with efConstruction candidates
 *     and the neighbour-selection heuristic (Algorithm 4 of the paper without
 *     extendCandidates / keepPrunedConnections, hnswlib's
 *     getNeighborsByHeuristic2): take candidates closest first, keep one only
 *     if it is closer to the new node than to every neighbour kept so far;
 *     the new node links to at most M of them, each of those links back, and
 *     a neighbour whose list is full re-selects its list by the same rule;
 *   - search: greedy descent on the upper levels, then a best-first search at
 *     level 0 with ef = max(efSearch, k) candidates.
 * Distance is 1 - dot(a, b) (hnswlib's InnerProductSpace), so for unit
 * vectors the ranking is by cosine. Results report similarity = dot product,
 * recomputed with sm_dot_f32, best first (ties by row index).
 *
 * Nodes are the rows of a float matrix (n, d) given at build or load. The
 * graph copies the rows into its level-0 blocks (each node's links and row
 * side by side, 64-byte aligned, as hnswlib lays them out: expanding a node
 * and scoring it touch one region of memory), so the caller's matrix may be
 * freed afterwards; the copy costs n * d * 4 bytes. The
 * build is sequential and deterministic: same rows, same config (seed
 * included), same graph, byte for byte. Searches may run concurrently from
 * any number of threads (a mutex-guarded pool of visited lists).
 *
 * On disk (docs/formats.md, "HNSW index"): magic + version, fixed-width
 * little-endian fields, CRC-32 of the header and of the body, written
 * atomically; the file also carries a caller's stamp (the gallery's
 * generation, uuid and model identity) and a 64-bit id per row, so a reader
 * can tell whether the graph still describes the rows it is given. */
#ifndef SM_HNSW_H
#define SM_HNSW_H
#include <stddef.h>
#include <stdint.h>

#include "simile.h"

typedef struct sm_hnsw sm_hnsw;

typedef struct sm_hnsw_config {
    int64_t m;               /* M: links per node on upper levels, 2..256 (level 0: 2M) */
    int64_t ef_construction; /* candidates per level during insertion, >= 1 */
    uint64_t seed;           /* level draws */
} sm_hnsw_config;

/* M 16, efConstruction 200, seed 100: hnswlib's defaults. */
void sm_hnsw_config_default(sm_hnsw_config *c);

/* Builds the graph of the rows of base (n, d) (copied, see the file
 * comment). *out is owned by the caller (sm_hnsw_free).
 * Errors: SM_ERR_ARG (n < 0 or >= 2^31, d < 1, M or efConstruction out of
 * range, NULL base with n > 0), SM_ERR_NOMEM. */
sm_status sm_hnsw_build(sm_hnsw **out, const float *base, int64_t n, int64_t d, const sm_hnsw_config *cfg,
                        sm_err *err);

/* Top-k (best first) of queries q (nq, d): idx (nq, k) row numbers or -1,
 * sim (nq, k) dot products or -INFINITY, as index.h's searches. ef is the
 * level-0 candidate list size (raised to k when smaller): larger is slower
 * and more accurate. Queries run in parallel over the OpenMP threads.
 * Errors: SM_ERR_ARG (k outside 1..SM_INDEX_MAX_K, ef < 1, nq < 0, NULL
 * arrays), SM_ERR_NOMEM. */
sm_status sm_hnsw_search(sm_hnsw *h, const float *q, int64_t nq, int64_t k, int64_t ef, int64_t *idx,
                         float *sim, sm_err *err);

int64_t sm_hnsw_size(const sm_hnsw *h);    /* rows n */
int64_t sm_hnsw_dim(const sm_hnsw *h);     /* d */
int sm_hnsw_max_level(const sm_hnsw *h);
const sm_hnsw_config *sm_hnsw_config_of(const sm_hnsw *h);
/* Bytes the graph holds: links, levels, its copy of the rows, visited lists. */
size_t sm_hnsw_bytes(const sm_hnsw *h);

/* What a saved graph was built from, written and checked by the caller. */
typedef struct sm_hnsw_stamp {
    uint64_t generation;   /* the gallery's generation counter */
    uint8_t uuid[16];      /* the gallery's identity */
    uint8_t model[32];     /* the model identity (SHA-256) */
} sm_hnsw_stamp;

/* Writes the graph, stamp and ids (n, the caller's id of each row; may be
 * NULL: written as the row numbers) to path atomically.
 * Errors: SM_ERR_IO (sm_file_write_atomic), SM_ERR_NOMEM. */
sm_status sm_hnsw_save(const sm_hnsw *h, const char *path, const sm_hnsw_stamp *stamp, const int64_t *ids,
                       sm_err *err);

/* Reads a graph saved by sm_hnsw_save over the rows base (n, d) (copied;
 * the file holds only the links), which must have the file's n and d. *out and *ids (n int64, malloc'd; ids may be
 * NULL when not wanted) are owned by the caller; *stamp is filled.
 * Every field is checked (magic, version, both CRCs, sizes against the file
 * size, levels, link counts and targets), so a damaged file is an error,
 * never a crash or a wrong graph.
 * Errors: SM_ERR_IO (cannot open/read), SM_ERR_FORMAT (not an HNSW file, other
 * version, truncated, CRC mismatch, inconsistent fields), SM_ERR_SHAPE (n or d
 * differ from the caller's), SM_ERR_NOMEM. On failure *out is NULL. */
sm_status sm_hnsw_load(sm_hnsw **out, const char *path, const float *base, int64_t n, int64_t d,
                       sm_hnsw_stamp *stamp, int64_t **ids, sm_err *err);

/* Reads only the header of a saved graph (magic, version, header CRC
 * checked): its stamp, row count and dimension (any pointer may be NULL).
 * Lets a caller tell a stale file from a current one without loading it.
 * Errors: SM_ERR_IO, SM_ERR_FORMAT as sm_hnsw_load. */
sm_status sm_hnsw_peek(const char *path, sm_hnsw_stamp *stamp, int64_t *n, int64_t *d, sm_err *err);

void sm_hnsw_free(sm_hnsw *h);   /* NULL is a no-op */

#endif
