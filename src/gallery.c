/* gallery.c - the SQLite gallery, its in-memory table and indexes (see simile.h, "gallery"). */
#include "simile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hnsw.h"
#include "index.h"
#include "status.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gallery.c stores embeddings in host order, which the format requires to be little-endian"
#endif

/* ================================================================ SHA-256 */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static inline uint32_t ror(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha_block(uint32_t h[8], const uint8_t *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

void sm_sha256_init(sm_sha256 *s)
{
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->len = 0;
    s->nbuf = 0;
}

void sm_sha256_update(sm_sha256 *s, const void *data, size_t n)
{
    const uint8_t *p = data;
    s->len += n;
    if (s->nbuf) {
        size_t take = 64 - s->nbuf < n ? 64 - s->nbuf : n;
        memcpy(s->buf + s->nbuf, p, take);
        s->nbuf += take;
        p += take;
        n -= take;
        if (s->nbuf < 64) return;
        sha_block(s->h, s->buf);
        s->nbuf = 0;
    }
    for (; n >= 64; p += 64, n -= 64) sha_block(s->h, p);
    memcpy(s->buf, p, n);
    s->nbuf = n;
}

void sm_sha256_final(sm_sha256 *s, uint8_t out[32])
{
    uint64_t bits = s->len * 8;
    uint8_t pad[72] = {0x80};
    size_t np = (s->nbuf < 56 ? 56 : 120) - s->nbuf;
    for (int i = 0; i < 8; i++) pad[np + (size_t)i] = (uint8_t)(bits >> (56 - 8 * i));
    sm_sha256_update(s, pad, np + 8);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++) out[4 * i + j] = (uint8_t)(s->h[i] >> (24 - 8 * j));
}

void sm_hex(char *out, const uint8_t *bytes, size_t n)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[bytes[i] >> 4];
        out[2 * i + 1] = hx[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

static bool unhex(uint8_t *out, const char *s, size_t n)
{
    if (!s || strlen(s) != 2 * n) return false;
    for (size_t i = 0; i < 2 * n; i++) {
        int c = s[i], v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0) return false;
        if (i % 2 == 0) out[i / 2] = (uint8_t)(v << 4);
        else out[i / 2] |= (uint8_t)v;
    }
    return true;
}

sm_status sm_sha256_file(const char *path, uint8_t out[32], sm_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return sm_fail(err, SM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    sm_sha256 s;
    sm_sha256_init(&s);
    uint8_t buf[65536];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) sm_sha256_update(&s, buf, got);
    bool bad = ferror(f);
    fclose(f);
    if (bad) return sm_fail(err, SM_ERR_IO, "cannot read '%s'", path);
    sm_sha256_final(&s, out);
    return SM_OK;
}

/* =============================================================== identity */

static void hash_str(sm_sha256 *s, const char *t)
{
    sm_sha256_update(s, t ? t : "", strlen(t ? t : "") + 1);   /* with its NUL: unambiguous */
}

void sm_model_identity(sm_model *m, uint8_t out[32])
{
    sm_sha256 s;
    sm_sha256_init(&s);
    hash_str(&s, "simile model identity 1");
    hash_str(&s, sm_model_spec(m));
    const sm_head_config *h = sm_model_head(m);
    char buf[512];
    if (h)
        snprintf(buf, sizeof buf, "head %s classes %" PRId64 " s %.9g m %.9g easy %d mneg %.9g m123 %.9g %.9g %.9g K %" PRId64,
                 sm_head_name(h->kind) ? sm_head_name(h->kind) : "?", sm_model_classes(m), (double)h->scale,
                 (double)h->margin, (int)h->easy_margin, (double)h->margin_neg, (double)h->m1, (double)h->m2,
                 (double)h->m3, h->subcenters);
    else
        snprintf(buf, sizeof buf, "head none");
    hash_str(&s, buf);
    float mean, std;
    sm_model_input_norm(m, &mean, &std);
    snprintf(buf, sizeof buf, "input_norm %.9g %.9g", (double)mean, (double)std);
    hash_str(&s, buf);
    int nt = sm_model_ntensors(m);
    for (int i = 0; i < nt; i++) {
        sm_tensor_info t;
        if (sm_model_tensor(m, i, &t)) continue;
        hash_str(&s, t.name);
        uint8_t dims[4 * 8 + 1];
        dims[0] = (uint8_t)t.ndim;
        for (int k = 0; k < 4; k++)
            for (int b = 0; b < 8; b++) dims[1 + 8 * k + b] = (uint8_t)((uint64_t)t.shape[k] >> (8 * b));
        sm_sha256_update(&s, dims, sizeof dims);
        sm_sha256_update(&s, t.data, sizeof(float) * (size_t)t.numel);   /* little-endian host */
    }
    sm_sha256_final(&s, out);
}

/* ================================================================ gallery */

struct sm_gallery {
    sqlite3 *db;
    char *path, *hnsw_path;
    bool readonly;
    int64_t dim;
    sm_gallery_dtype dtype;
    uint8_t model[32], uuid[16];
    char model_name[256];
    int64_t generation;        /* as of the last read or own write */
    /* the in-memory table, in id order */
    bool loaded;
    int64_t data_version;      /* PRAGMA data_version at the load */
    int64_t n, cap;
    int64_t *ids;
    float *emb;                /* float32 gallery: (n, dim) unit rows */
    int8_t *codes;             /* int8 gallery: (n, dim) */
    float *scales;             /* int8 gallery: (n) */
    /* derived, rebuilt on demand after any change */
    float *dec;                /* int8 gallery: decoded rows for HNSW */
    int8_t *qcodes;            /* float32 gallery: quantised for the INT8 index */
    float *qscales;
    sm_hnsw *hnsw;
};

const char *sm_gallery_hnsw_path(const sm_gallery *g) { return g->hnsw_path; }

/* ---------------------------------------------------------------- SQLite */

/* An SQLite failure as an sm_status with a message that names the gallery. */
static sm_status sql_fail(const char *path, sqlite3 *db, int rc, sm_err *err, const char *what)
{
    const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    switch (rc & 0xff) {
    case SQLITE_NOTADB:
        return sm_fail(err, SM_ERR_FORMAT, "'%s' is not a simile gallery (not an SQLite database)", path);
    case SQLITE_CORRUPT:
        return sm_fail(err, SM_ERR_FORMAT, "gallery '%s' is damaged (sqlite: %s); restore it from a backup", path, msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return sm_fail(err, SM_ERR_IO, "gallery '%s' is locked by another process (waited 5 s): %s", path, what);
    case SQLITE_FULL:
        return sm_fail(err, SM_ERR_IO, "gallery '%s': disk full while %s (nothing was changed)", path, what);
    case SQLITE_NOMEM:
        return sm_fail(err, SM_ERR_NOMEM, "out of memory (sqlite) while %s", what);
    case SQLITE_READONLY:
        return sm_fail(err, SM_ERR_IO, "gallery '%s' is read-only (%s) while %s", path, msg, what);
    case SQLITE_CANTOPEN:
        return sm_fail(err, SM_ERR_IO, "cannot open gallery '%s' (%s)", path, msg);
    case SQLITE_IOERR: {   /* the system's reason, when sqlite kept one */
        int e = db ? sqlite3_system_errno(db) : 0;
        if (e == ENOSPC || e == EFBIG || e == EDQUOT)
            return sm_fail(err, SM_ERR_IO, "gallery '%s': %s while %s (nothing was changed)", path, strerror(e), what);
        if (e) return sm_fail(err, SM_ERR_IO, "gallery '%s': %s (sqlite: %s: %s)", path, what, msg, strerror(e));
        return sm_fail(err, SM_ERR_IO, "gallery '%s': %s (sqlite: %s)", path, what, msg);
    }
    default:
        return sm_fail(err, SM_ERR_IO, "gallery '%s': %s (sqlite: %s)", path, what, msg);
    }
}

static sm_status exec(sm_gallery *g, const char *sql, sm_err *err, const char *what)
{
    int rc = sqlite3_exec(g->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? SM_OK : sql_fail(g->path, g->db, rc, err, what);
}

/* Runs a one-row integer query; *v = its first column (0 if no row). */
static int query_int(sqlite3 *db, const char *sql, int64_t *v)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_step(st);
    *v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) rc = SQLITE_OK;
    sqlite3_finalize(st);
    return rc;
}

typedef struct meta {
    char format[32], version[16], model_id[80], model_name[256], dim[32], dtype[16], generation[32], uuid[48];
    char threshold[48], far[48], tar[48];
} meta;

/* Reads the meta table; rc is SQLite's. */
static int read_meta(sqlite3 *db, meta *m)
{
    memset(m, 0, sizeof *m);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT key, value FROM meta", -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0), *v = (const char *)sqlite3_column_text(st, 1);
        if (!k || !v) continue;
        struct { const char *key; char *dst; size_t cap; } f[] = {
            {"format", m->format, sizeof m->format}, {"format_version", m->version, sizeof m->version},
            {"model_id", m->model_id, sizeof m->model_id}, {"model_name", m->model_name, sizeof m->model_name},
            {"dim", m->dim, sizeof m->dim}, {"dtype", m->dtype, sizeof m->dtype},
            {"generation", m->generation, sizeof m->generation}, {"uuid", m->uuid, sizeof m->uuid},
            {"threshold", m->threshold, sizeof m->threshold}, {"threshold_far", m->far, sizeof m->far},
            {"threshold_tar", m->tar, sizeof m->tar}};
        for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
            if (!strcmp(k, f[i].key)) snprintf(f[i].dst, f[i].cap, "%s", v);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static bool parse_i64(const char *s, int64_t *v)
{
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || *end) return false;
    *v = x;
    return true;
}

/* ---------------------------------------------------------------- create */

static void random_bytes(uint8_t *p, size_t n)
{
    size_t got = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) {
        ssize_t r = read(fd, p, n);
        got = r > 0 ? (size_t)r : 0;
        close(fd);
    }
    if (got < n) {   /* no /dev/urandom: time, pid and address, hashed */
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        uint64_t mix[4] = {(uint64_t)t.tv_sec, (uint64_t)t.tv_nsec, (uint64_t)getpid(), (uint64_t)(uintptr_t)p};
        uint8_t h[32];
        sm_sha256 s;
        sm_sha256_init(&s);
        sm_sha256_update(&s, mix, sizeof mix);
        sm_sha256_final(&s, h);
        for (size_t i = got; i < n; i++) p[i] = h[i % 32];
    }
}

static void fsync_dir_of(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) dir[1] = '\0';
    else if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Creates a complete empty gallery at path: built in "<path>.tmp.<pid>",
 * then linked into place (link fails if path appeared meanwhile: then the
 * other process's gallery wins and is opened by the caller). */
static sm_status create_file(const char *path, const sm_gallery_model *m, sm_gallery_dtype dt, sm_err *err)
{
    char *tmp = malloc(strlen(path) + 32);
    if (!tmp) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    sprintf(tmp, "%s.tmp.%d", path, (int)getpid());
    unlink(tmp);
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(tmp, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    sm_status st = SM_OK;
    if (rc != SQLITE_OK) {
        st = sm_fail(err, SM_ERR_IO, "cannot create gallery '%s': %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        goto out;
    }
    uint8_t uuid[16];
    random_bytes(uuid, sizeof uuid);
    char idhex[65], uuidhex[33], *sql;
    sm_hex(idhex, m->id, 32);
    sm_hex(uuidhex, uuid, 16);
    char *name = sqlite3_mprintf("%q", m->name ? m->name : "");
    sql = sqlite3_mprintf(
        "PRAGMA journal_mode = WAL;"
        "BEGIN;"
        "CREATE TABLE meta(key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE items(id INTEGER PRIMARY KEY AUTOINCREMENT, label TEXT NOT NULL, source TEXT,"
        " content_hash TEXT UNIQUE, embedding BLOB NOT NULL, created INTEGER NOT NULL);"
        "INSERT INTO meta VALUES ('format', 'simile-gallery'), ('format_version', '%d'), ('model_id', '%s'),"
        " ('model_name', '%s'), ('dim', '%lld'), ('dtype', '%s'), ('generation', '0'), ('uuid', '%s'),"
        " ('created', '%lld');"
        "PRAGMA application_id = %d;"
        "PRAGMA user_version = %d;"
        "COMMIT;",
        SM_GALLERY_SCHEMA, idhex, name ? name : "", (long long)m->dim, dt == SM_GALLERY_I8 ? "int8" : "float32",
        uuidhex, (long long)time(NULL), SM_GALLERY_APP_ID, SM_GALLERY_SCHEMA);
    sqlite3_free(name);
    if (!sql) {
        st = sm_fail(err, SM_ERR_NOMEM, "out of memory");
        goto out;
    }
    rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK) {
        st = sql_fail(path, db, rc, err, "creating the gallery");
        goto out;
    }
    rc = sqlite3_close(db);   /* checkpoints the WAL into the file and removes it */
    db = NULL;
    if (rc != SQLITE_OK) {
        st = sm_fail(err, SM_ERR_IO, "cannot create gallery '%s': closing failed", path);
        goto out;
    }
    int fd = open(tmp, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    if (link(tmp, path) != 0 && errno != EEXIST) {
        st = sm_fail(err, SM_ERR_IO, "cannot create gallery '%s': %s", path, strerror(errno));
        goto out;
    }
    fsync_dir_of(path);
out:
    if (db) sqlite3_close(db);
    unlink(tmp);
    char side[4200];
    snprintf(side, sizeof side, "%s-wal", tmp);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", tmp);
    unlink(side);
    free(tmp);
    return st;
}

/* ------------------------------------------------------------------ open */

static void free_derived(sm_gallery *g)
{
    free(g->dec);
    free(g->qcodes);
    free(g->qscales);
    sm_hnsw_free(g->hnsw);
    g->dec = NULL;
    g->qcodes = NULL;
    g->qscales = NULL;
    g->hnsw = NULL;
}

static void free_table(sm_gallery *g)
{
    free_derived(g);
    free(g->ids);
    free(g->emb);
    free(g->codes);
    free(g->scales);
    g->ids = NULL;
    g->emb = NULL;
    g->codes = NULL;
    g->scales = NULL;
    g->n = g->cap = 0;
    g->loaded = false;
}

void sm_gallery_close(sm_gallery *g)
{
    if (!g) return;
    free_table(g);
    if (g->db) sqlite3_close(g->db);
    free(g->path);
    free(g->hnsw_path);
    free(g);
}

/* The first 12 hex digits of an identity: what messages show. */
static const char *short_id(const char *hex, char *buf)
{
    memcpy(buf, hex, 12);
    buf[12] = '\0';
    return buf;
}

/* Checks that db is a gallery of a version we read and fills g from meta. */
static sm_status check_gallery(sm_gallery *g, sm_err *err)
{
    int64_t app = 0, ver = 0;
    int rc = query_int(g->db, "PRAGMA application_id", &app);
    if (rc != SQLITE_OK) return sql_fail(g->path, g->db, rc, err, "reading the header");
    if ((uint32_t)app != SM_GALLERY_APP_ID) {
        int64_t tables = 0;
        query_int(g->db, "SELECT count(*) FROM sqlite_master", &tables);
        return sm_fail(err, SM_ERR_FORMAT, "'%s' is an SQLite database but not a simile gallery (%s)", g->path,
                       tables ? "it holds another application's tables" : "it is empty");
    }
    if ((rc = query_int(g->db, "PRAGMA user_version", &ver)) != SQLITE_OK)
        return sql_fail(g->path, g->db, rc, err, "reading the header");
    if (ver > SM_GALLERY_SCHEMA)
        return sm_fail(err, SM_ERR_FORMAT, "gallery '%s' has format version %lld; this simile reads version %d (upgrade simile)",
                       g->path, (long long)ver, SM_GALLERY_SCHEMA);
    if (ver < 1) return sm_fail(err, SM_ERR_FORMAT, "'%s' is not a simile gallery (schema version %lld)", g->path, (long long)ver);
    meta m;
    if ((rc = read_meta(g->db, &m)) != SQLITE_OK) return sql_fail(g->path, g->db, rc, err, "reading its meta table");
    int64_t dim = 0, gen = 0;
    if (strcmp(m.format, "simile-gallery") != 0 || strcmp(m.version, "1") != 0 || !parse_i64(m.dim, &dim) ||
        dim < 1 || dim > ((int64_t)1 << 17) || !parse_i64(m.generation, &gen) || !unhex(g->model, m.model_id, 32) ||
        !unhex(g->uuid, m.uuid, 16) || (strcmp(m.dtype, "float32") && strcmp(m.dtype, "int8")))
        return sm_fail(err, SM_ERR_FORMAT, "gallery '%s' is damaged: its meta table is incomplete or invalid", g->path);
    g->dim = dim;
    g->generation = gen;
    g->dtype = strcmp(m.dtype, "int8") ? SM_GALLERY_F32 : SM_GALLERY_I8;
    snprintf(g->model_name, sizeof g->model_name, "%s", m.model_name);
    return SM_OK;
}

sm_status sm_gallery_open(sm_gallery **out, const char *path, const sm_gallery_model *model,
                          const sm_gallery_options *opts, sm_err *err)
{
    *out = NULL;
    sm_gallery_options o = {0};
    if (opts) o = *opts;
    if (!path || !*path) return sm_fail(err, SM_ERR_ARG, "no gallery path given");
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno != ENOENT || !o.create)
            return sm_fail(err, SM_ERR_IO, "cannot open gallery '%s': %s", path,
                           errno == ENOENT ? "no such file (enrolling creates one)" : strerror(errno));
        if (!model) return sm_fail(err, SM_ERR_ARG, "creating gallery '%s' needs the model", path);
        if (o.readonly) return sm_fail(err, SM_ERR_ARG, "cannot create gallery '%s' read-only", path);
        sm_status st = create_file(path, model, o.dtype, err);
        if (st) return st;
    } else if (!S_ISREG(sb.st_mode)) {
        return sm_fail(err, SM_ERR_FORMAT, "'%s' is not a simile gallery (not a regular file)", path);
    }
    sm_gallery *g = calloc(1, sizeof *g);
    if (!g) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    g->readonly = o.readonly;
    g->path = strdup(path);
    g->hnsw_path = malloc(strlen(path) + 8);
    if (!g->path || !g->hnsw_path) {
        sm_gallery_close(g);
        return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    }
    sprintf(g->hnsw_path, "%s.hnsw", path);
    int rc = sqlite3_open_v2(path, &g->db, o.readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE, NULL);
    sm_status st;
    if (rc != SQLITE_OK) {
        st = sql_fail(path, g->db, rc, err, "opening");
        sm_gallery_close(g);
        return st;
    }
    sqlite3_busy_timeout(g->db, 5000);
    if ((st = check_gallery(g, err))) {
        sm_gallery_close(g);
        return st;
    }
    if (model) {
        char a[65], b[65], sa[16], sb2[16];
        sm_hex(a, g->model, 32);
        sm_hex(b, model->id, 32);
        if (memcmp(g->model, model->id, 32) != 0) {
            st = sm_fail(err, SM_ERR_ARG, "gallery '%s' was built with model %s (%s, %lld-d); this is model %s (%s, %lld-d)",
                         path, short_id(a, sa), g->model_name[0] ? g->model_name : "unnamed", (long long)g->dim,
                         short_id(b, sb2), model->name ? model->name : "unnamed", (long long)model->dim);
            sm_gallery_close(g);
            return st;
        }
        if (model->dim != g->dim) {
            st = sm_fail(err, SM_ERR_SHAPE, "dimension mismatch: gallery '%s' holds %lld-d embeddings, the model gives %lld-d",
                         path, (long long)g->dim, (long long)model->dim);
            sm_gallery_close(g);
            return st;
        }
    }
    if (!o.readonly) {
        /* WAL is persistent in the file (set at creation); set it only if
         * someone turned it off. synchronous is per connection. */
        sqlite3_stmt *js = NULL;
        bool wal = false;
        if (sqlite3_prepare_v2(g->db, "PRAGMA journal_mode", -1, &js, NULL) == SQLITE_OK &&
            sqlite3_step(js) == SQLITE_ROW) {
            const char *mode = (const char *)sqlite3_column_text(js, 0);
            wal = mode && !strcmp(mode, "wal");
        }
        sqlite3_finalize(js);
        if ((!wal && (st = exec(g, "PRAGMA journal_mode = WAL", err, "switching to WAL"))) ||
            (st = exec(g, "PRAGMA synchronous = FULL", err, "setting synchronous"))) {
            sm_gallery_close(g);
            return st;
        }
    }
    *out = g;
    return SM_OK;
}

/* ------------------------------------------------------------------ info */

sm_status sm_gallery_info_get(sm_gallery *g, sm_gallery_info *info, sm_err *err)
{
    memset(info, 0, sizeof *info);
    meta m;
    int64_t count = 0, dv = -1;
    int rc = read_meta(g->db, &m);
    /* count(*) walks the whole table: use the in-memory table when it is current */
    if (rc == SQLITE_OK && g->loaded) rc = query_int(g->db, "PRAGMA data_version", &dv);
    if (rc == SQLITE_OK && g->loaded && dv == g->data_version) count = g->n;
    else if (rc == SQLITE_OK) rc = query_int(g->db, "SELECT count(*) FROM items", &count);
    if (rc != SQLITE_OK) return sql_fail(g->path, g->db, rc, err, "reading its meta table");
    info->count = count;
    info->dim = g->dim;
    info->dtype = g->dtype;
    if (!parse_i64(m.generation, &info->generation)) info->generation = g->generation;
    sm_hex(info->model_id, g->model, 32);
    sm_hex(info->uuid, g->uuid, 16);
    snprintf(info->model_name, sizeof info->model_name, "%s", g->model_name);
    if (m.threshold[0]) {
        char *end;
        double t = strtod(m.threshold, &end);
        if (!*end && isfinite(t)) {
            info->has_threshold = true;
            info->threshold = (float)t;
            info->threshold_far = atof(m.far);
            info->threshold_tar = atof(m.tar);
        }
    }
    return SM_OK;
}

/* ------------------------------------------------------- in-memory table */

static sm_status reserve(sm_gallery *g, int64_t need, sm_err *err)
{
    if (need <= g->cap) return SM_OK;
    int64_t nc = g->cap ? g->cap : 64;
    while (nc < need) nc *= 2;
    size_t d = (size_t)g->dim;
    int64_t *ids = realloc(g->ids, sizeof(int64_t) * (size_t)nc);
    if (ids) g->ids = ids;
    bool ok = ids != NULL;
    if (ok && g->dtype == SM_GALLERY_F32) {
        float *e = realloc(g->emb, sizeof(float) * d * (size_t)nc);
        if (e) g->emb = e;
        ok = e != NULL;
    } else if (ok) {
        int8_t *c = realloc(g->codes, d * (size_t)nc);
        if (c) g->codes = c;
        float *s = c ? realloc(g->scales, sizeof(float) * (size_t)nc) : NULL;
        if (s) g->scales = s;
        ok = c && s;
    }
    if (!ok) return sm_fail(err, SM_ERR_NOMEM, "out of memory for %lld gallery items", (long long)nc);
    g->cap = nc;
    return SM_OK;
}

/* Stores one row (already normalised / quantised) at position i. */
static void put_row(sm_gallery *g, int64_t i, int64_t id, const float *unit, const int8_t *code, float scale)
{
    size_t d = (size_t)g->dim;
    g->ids[i] = id;
    if (g->dtype == SM_GALLERY_F32) {
        memcpy(g->emb + (size_t)i * d, unit, sizeof(float) * d);
    } else {
        memcpy(g->codes + (size_t)i * d, code, d);
        g->scales[i] = scale;
    }
}

/* Reads every embedding (and the generation) in one read transaction. */
static sm_status load_table(sm_gallery *g, sm_err *err)
{
    free_table(g);
    sm_status st = exec(g, "BEGIN", err, "starting a read");
    if (st) return st;
    meta m;
    int64_t dv = 0, gen = 0;
    sqlite3_stmt *q = NULL;
    int rc = read_meta(g->db, &m);
    if (rc == SQLITE_OK) rc = query_int(g->db, "PRAGMA data_version", &dv);
    if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(g->db, "SELECT id, embedding FROM items ORDER BY id", -1, &q, NULL);
    if (rc != SQLITE_OK) {
        st = sql_fail(g->path, g->db, rc, err, "reading the items");
        goto done;
    }
    if (!parse_i64(m.generation, &gen)) {
        st = sm_fail(err, SM_ERR_FORMAT, "gallery '%s' is damaged: bad generation in its meta table", g->path);
        goto done;
    }
    size_t d = (size_t)g->dim;
    size_t want = g->dtype == SM_GALLERY_F32 ? sizeof(float) * d : sizeof(float) + d;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(q, 0);
        const uint8_t *b = sqlite3_column_blob(q, 1);
        size_t nb = (size_t)sqlite3_column_bytes(q, 1);
        if (nb != want || !b) {
            st = sm_fail(err, SM_ERR_FORMAT, "gallery '%s' is damaged: item %lld has a %zu-byte embedding (expected %zu)",
                         g->path, (long long)id, nb, want);
            goto done;
        }
        if ((st = reserve(g, g->n + 1, err))) goto done;
        bool finite = true;
        if (g->dtype == SM_GALLERY_F32) {
            float *row = g->emb + (size_t)g->n * d;
            memcpy(row, b, want);
            for (size_t j = 0; j < d; j++) finite &= isfinite(row[j]);
        } else {
            float s;
            memcpy(&s, b, sizeof s);
            finite = isfinite(s) && s >= 0;
            memcpy(g->codes + (size_t)g->n * d, b + sizeof s, d);
            g->scales[g->n] = s;
        }
        if (!finite) {
            st = sm_fail(err, SM_ERR_FORMAT, "gallery '%s' is damaged: item %lld has a non-finite embedding", g->path,
                         (long long)id);
            goto done;
        }
        g->ids[g->n++] = id;
    }
    if (rc != SQLITE_DONE) {
        st = sql_fail(g->path, g->db, rc, err, "reading the items");
        goto done;
    }
    g->generation = gen;
    g->data_version = dv;
    g->loaded = true;
done:
    sqlite3_finalize(q);
    sqlite3_exec(g->db, "COMMIT", NULL, NULL, NULL);
    if (st) free_table(g);
    return st;
}

/* Loads the table if not loaded or if another connection changed the file. */
static sm_status fresh_table(sm_gallery *g, sm_err *err)
{
    if (g->loaded) {
        int64_t dv = 0;
        int rc = query_int(g->db, "PRAGMA data_version", &dv);
        if (rc != SQLITE_OK) return sql_fail(g->path, g->db, rc, err, "checking for changes");
        if (dv == g->data_version) return SM_OK;
    }
    return load_table(g, err);
}

/* --------------------------------------------------------------- changes */

/* Unit row of v (d) into out; false if v is not finite or is zero. */
static bool unit_row(float *out, const float *v, int64_t d)
{
    double s = 0;
    for (int64_t j = 0; j < d; j++) {
        if (!isfinite(v[j])) return false;
        s += (double)v[j] * v[j];
    }
    if (!(s > 0) || !isfinite(s)) return false;
    float inv = (float)(1.0 / sqrt(s));
    for (int64_t j = 0; j < d; j++) out[j] = v[j] * inv;
    return true;
}

static sm_status bump_generation(sm_gallery *g, sm_err *err)
{
    return exec(g, "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'", err,
                "updating the generation");
}

sm_status sm_gallery_enroll(sm_gallery *g, const sm_gallery_item *items, int64_t n, int64_t *ids,
                            int64_t *added, sm_err *err)
{
    if (added) *added = 0;
    if (g->readonly) return sm_fail(err, SM_ERR_ARG, "gallery '%s' is open read-only", g->path);
    if (n < 0 || (n > 0 && !items)) return sm_fail(err, SM_ERR_ARG, "bad item list (n %lld)", (long long)n);
    if (n == 0) return SM_OK;
    size_t d = (size_t)g->dim;
    /* check and convert everything before touching the file */
    float *unit = malloc(sizeof(float) * d * (size_t)n);
    int8_t *codes = g->dtype == SM_GALLERY_I8 ? malloc(d * (size_t)n) : NULL;
    float *scales = g->dtype == SM_GALLERY_I8 ? malloc(sizeof(float) * (size_t)n) : NULL;
    int64_t *rid = malloc(sizeof(int64_t) * (size_t)n);
    uint8_t *fresh = calloc((size_t)n, 1);
    uint8_t *blob = malloc(sizeof(float) * d + 4);
    sm_status st = SM_OK;
    sqlite3_stmt *find = NULL, *ins = NULL;
    bool in_tx = false;
    int64_t nadd = 0;
    if (!unit || (g->dtype == SM_GALLERY_I8 && (!codes || !scales)) || !rid || !fresh || !blob) {
        st = sm_fail(err, SM_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        const sm_gallery_item *it = &items[i];
        if (!it->label || !*it->label) {
            st = sm_fail(err, SM_ERR_ARG, "item %lld%s%s%s has an empty label", (long long)i + 1, it->source ? " ('" : "",
                         it->source ? it->source : "", it->source ? "')" : "");
            goto done;
        }
        if (!it->embedding || !unit_row(unit + (size_t)i * d, it->embedding, g->dim)) {
            st = sm_fail(err, SM_ERR_NAN, "item %lld%s%s%s: its embedding is not finite or is zero", (long long)i + 1,
                         it->source ? " ('" : "", it->source ? it->source : "", it->source ? "')" : "");
            goto done;
        }
    }
    if (codes) sm_q8_encode(codes, scales, unit, n, g->dim);

    int rc = sqlite3_prepare_v2(g->db, "SELECT id, label FROM items WHERE content_hash = ?", -1, &find, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(g->db,
                                "INSERT INTO items(label, source, content_hash, embedding, created) VALUES (?, ?, ?, ?, ?)",
                                -1, &ins, NULL);
    if (rc != SQLITE_OK) {
        st = sql_fail(g->path, g->db, rc, err, "preparing the enroll");
        goto done;
    }
    if ((st = exec(g, "BEGIN IMMEDIATE", err, "starting the enroll"))) goto done;
    in_tx = true;
    int64_t now = (int64_t)time(NULL);
    for (int64_t i = 0; i < n; i++) {
        const sm_gallery_item *it = &items[i];
        char hex[65] = "";
        if (it->content) {
            sm_hex(hex, it->content, 32);
            sqlite3_reset(find);
            sqlite3_bind_text(find, 1, hex, -1, SQLITE_TRANSIENT);
            rc = sqlite3_step(find);
            if (rc == SQLITE_ROW) {
                int64_t id = sqlite3_column_int64(find, 0);
                const char *lab = (const char *)sqlite3_column_text(find, 1);
                if (lab && !strcmp(lab, it->label)) {
                    rid[i] = id;
                    continue;
                }
                st = sm_fail(err, SM_ERR_CONFLICT,
                             "%s%s%sis already enrolled as item %lld with label '%s', not '%s' (remove it first; nothing was enrolled)",
                             it->source ? "'" : "", it->source ? it->source : "this image", it->source ? "' " : " ",
                             (long long)id, lab ? lab : "", it->label);
                goto done;
            }
            if (rc != SQLITE_DONE) {
                st = sql_fail(g->path, g->db, rc, err, "looking up a content hash");
                goto done;
            }
        }
        size_t nb;
        if (g->dtype == SM_GALLERY_F32) {
            nb = sizeof(float) * d;
            memcpy(blob, unit + (size_t)i * d, nb);
        } else {
            nb = sizeof(float) + d;
            memcpy(blob, &scales[i], sizeof(float));
            memcpy(blob + sizeof(float), codes + (size_t)i * d, d);
        }
        sqlite3_reset(ins);
        sqlite3_bind_text(ins, 1, it->label, -1, SQLITE_TRANSIENT);
        if (it->source) sqlite3_bind_text(ins, 2, it->source, -1, SQLITE_TRANSIENT);
        else sqlite3_bind_null(ins, 2);
        if (it->content) sqlite3_bind_text(ins, 3, hex, -1, SQLITE_TRANSIENT);
        else sqlite3_bind_null(ins, 3);
        sqlite3_bind_blob(ins, 4, blob, (int)nb, SQLITE_TRANSIENT);
        sqlite3_bind_int64(ins, 5, now);
        if ((rc = sqlite3_step(ins)) != SQLITE_DONE) {
            st = sql_fail(g->path, g->db, rc, err, "enrolling");
            goto done;
        }
        rid[i] = sqlite3_last_insert_rowid(g->db);
        fresh[i] = 1;
        nadd++;
    }
    if (nadd > 0 && (st = bump_generation(g, err))) goto done;
    if ((st = exec(g, "COMMIT", err, "committing the enroll"))) goto done;
    in_tx = false;
    /* the file has it; now the memory (an allocation failure here only
     * forces a reload at the next search) */
    if (nadd > 0) {
        g->generation++;
        free_derived(g);
        if (g->loaded) {
            sm_err e2;
            if (reserve(g, g->n + nadd, &e2)) {
                free_table(g);
            } else {
                for (int64_t i = 0; i < n; i++)
                    if (fresh[i])
                        put_row(g, g->n++, rid[i], unit + (size_t)i * d, codes ? codes + (size_t)i * d : NULL,
                                scales ? scales[i] : 0.0f);
            }
        }
    }
    if (ids) memcpy(ids, rid, sizeof(int64_t) * (size_t)n);
    if (added) *added = nadd;
done:
    if (in_tx) sqlite3_exec(g->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_finalize(find);
    sqlite3_finalize(ins);
    free(unit);
    free(codes);
    free(scales);
    free(rid);
    free(fresh);
    free(blob);
    return st;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

sm_status sm_gallery_remove(sm_gallery *g, const int64_t *ids, int64_t n, sm_err *err)
{
    if (g->readonly) return sm_fail(err, SM_ERR_ARG, "gallery '%s' is open read-only", g->path);
    if (n < 0 || (n > 0 && !ids)) return sm_fail(err, SM_ERR_ARG, "bad id list (n %lld)", (long long)n);
    if (n == 0) return SM_OK;
    int64_t *v = malloc(sizeof(int64_t) * (size_t)n);
    if (!v) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    memcpy(v, ids, sizeof(int64_t) * (size_t)n);
    qsort(v, (size_t)n, sizeof *v, cmp_i64);
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if (m == 0 || v[i] != v[m - 1]) v[m++] = v[i];
    sqlite3_stmt *del = NULL;
    bool in_tx = false;
    sm_status st = SM_OK;
    int rc = sqlite3_prepare_v2(g->db, "DELETE FROM items WHERE id = ?", -1, &del, NULL);
    if (rc != SQLITE_OK) {
        st = sql_fail(g->path, g->db, rc, err, "preparing the removal");
        goto done;
    }
    if ((st = exec(g, "BEGIN IMMEDIATE", err, "starting the removal"))) goto done;
    in_tx = true;
    for (int64_t i = 0; i < m; i++) {
        sqlite3_reset(del);
        sqlite3_bind_int64(del, 1, v[i]);
        if ((rc = sqlite3_step(del)) != SQLITE_DONE) {
            st = sql_fail(g->path, g->db, rc, err, "removing");
            goto done;
        }
        if (sqlite3_changes(g->db) == 0) {
            st = sm_fail(err, SM_ERR_ARG, "no item %lld in gallery '%s' (nothing was removed)", (long long)v[i], g->path);
            goto done;
        }
    }
    if ((st = bump_generation(g, err)) || (st = exec(g, "COMMIT", err, "committing the removal"))) goto done;
    in_tx = false;
    g->generation++;
    free_derived(g);
    if (g->loaded) {   /* compact, keeping id order */
        size_t d = (size_t)g->dim;
        int64_t w = 0;
        for (int64_t r = 0; r < g->n; r++) {
            if (bsearch(&g->ids[r], v, (size_t)m, sizeof *v, cmp_i64)) continue;
            if (w != r) {
                g->ids[w] = g->ids[r];
                if (g->dtype == SM_GALLERY_F32) {
                    memmove(g->emb + (size_t)w * d, g->emb + (size_t)r * d, sizeof(float) * d);
                } else {
                    memmove(g->codes + (size_t)w * d, g->codes + (size_t)r * d, d);
                    g->scales[w] = g->scales[r];
                }
            }
            w++;
        }
        g->n = w;
    }
done:
    if (in_tx) sqlite3_exec(g->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_finalize(del);
    free(v);
    return st;
}

/* ----------------------------------------------------------------- items */

static char *dup_col(sqlite3_stmt *s, int c, bool *oom)
{
    const char *t = (const char *)sqlite3_column_text(s, c);
    if (!t) return NULL;
    char *r = strdup(t);
    if (!r) *oom = true;
    return r;
}

static void fill_entry(sqlite3_stmt *s, sm_gallery_entry *e, bool *oom)
{
    e->id = sqlite3_column_int64(s, 0);
    e->label = dup_col(s, 1, oom);
    e->source = dup_col(s, 2, oom);
    const char *h = (const char *)sqlite3_column_text(s, 3);
    snprintf(e->content, sizeof e->content, "%s", h ? h : "");
    e->created = sqlite3_column_int64(s, 4);
    if (!e->label && !*oom) {
        e->label = strdup("");
        if (!e->label) *oom = true;
    }
}

void sm_gallery_entry_clear(sm_gallery_entry *e)
{
    if (!e) return;
    free(e->label);
    free(e->source);
    memset(e, 0, sizeof *e);
}

void sm_gallery_entries_free(sm_gallery_entry *e, int64_t n)
{
    if (!e) return;
    for (int64_t i = 0; i < n; i++) sm_gallery_entry_clear(&e[i]);
    free(e);
}

sm_status sm_gallery_items(sm_gallery *g, int64_t after_id, int64_t limit, sm_gallery_entry **out, int64_t *n,
                           sm_err *err)
{
    *out = NULL;
    *n = 0;
    if (limit < 1) return sm_fail(err, SM_ERR_ARG, "page size must be >= 1 (got %lld)", (long long)limit);
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(g->db,
                                "SELECT id, label, source, content_hash, created FROM items WHERE id > ? ORDER BY id LIMIT ?",
                                -1, &s, NULL);
    if (rc != SQLITE_OK) return sql_fail(g->path, g->db, rc, err, "listing the items");
    sqlite3_bind_int64(s, 1, after_id);
    sqlite3_bind_int64(s, 2, limit);
    sm_gallery_entry *v = NULL;
    int64_t m = 0, cap = 0;
    bool oom = false;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && !oom) {
        if (m == cap) {
            int64_t nc = cap ? 2 * cap : 64;
            sm_gallery_entry *p = realloc(v, sizeof *v * (size_t)nc);
            if (!p) { oom = true; break; }
            v = p;
            cap = nc;
        }
        memset(&v[m], 0, sizeof v[m]);
        fill_entry(s, &v[m++], &oom);
    }
    sqlite3_finalize(s);
    if (oom) {
        sm_gallery_entries_free(v, m);
        return sm_fail(err, SM_ERR_NOMEM, "out of memory listing the items");
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        sm_gallery_entries_free(v, m);
        return sql_fail(g->path, g->db, rc, err, "listing the items");
    }
    *out = v;
    *n = m;
    return SM_OK;
}

sm_status sm_gallery_get(sm_gallery *g, int64_t id, sm_gallery_entry *out, bool *found, sm_err *err)
{
    memset(out, 0, sizeof *out);
    *found = false;
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(g->db, "SELECT id, label, source, content_hash, created FROM items WHERE id = ?", -1,
                                &s, NULL);
    if (rc != SQLITE_OK) return sql_fail(g->path, g->db, rc, err, "reading an item");
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    bool oom = false;
    if (rc == SQLITE_ROW) {
        fill_entry(s, out, &oom);
        *found = true;
        rc = SQLITE_DONE;
    }
    sqlite3_finalize(s);
    if (oom) {
        sm_gallery_entry_clear(out);
        *found = false;
        return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    }
    if (rc != SQLITE_DONE) return sql_fail(g->path, g->db, rc, err, "reading an item");
    return SM_OK;
}

/* ---------------------------------------------------------------- search */

static sm_gallery_index resolve(const sm_gallery *g, sm_gallery_index want)
{
    if (want != SM_GALLERY_INDEX_AUTO) return want;
    if (g->dtype == SM_GALLERY_I8) return SM_GALLERY_INDEX_INT8;
    return g->n >= SM_GALLERY_HNSW_MIN ? SM_GALLERY_INDEX_HNSW : SM_GALLERY_INDEX_EXACT;
}

/* Float rows of the table: the stored ones, or the int8 ones decoded. */
static const float *float_rows(sm_gallery *g, sm_err *err)
{
    if (g->dtype == SM_GALLERY_F32) return g->emb;
    if (!g->dec) {
        g->dec = malloc(sizeof(float) * (size_t)(g->n * g->dim > 0 ? g->n * g->dim : 1));
        if (!g->dec) {
            sm_fail(err, SM_ERR_NOMEM, "out of memory decoding %lld int8 rows", (long long)g->n);
            return NULL;
        }
        sm_q8_decode(g->dec, g->codes, g->scales, g->n, g->dim);
    }
    return g->dec;
}

static sm_status prepare_hnsw(sm_gallery *g, const sm_gallery_search_opts *o, char *note, size_t cap, sm_err *err)
{
    if (g->hnsw) return SM_OK;   /* dropped on every change, so current */
    const float *rows = float_rows(g, err);
    if (!rows) return SM_ERR_NOMEM;
    char why[600] = "";
    sm_hnsw_stamp stamp;
    int64_t *fids = NULL;
    sm_err e2 = {0};
    sm_hnsw *h = NULL;
    struct stat sb;
    if (stat(g->hnsw_path, &sb) != 0) {
        snprintf(why, sizeof why, "no index file yet");
    } else if (sm_hnsw_peek(g->hnsw_path, &stamp, NULL, NULL, &e2)) {
        snprintf(why, sizeof why, "%s", e2.msg);
    } else if (memcmp(stamp.uuid, g->uuid, 16) != 0 || memcmp(stamp.model, g->model, 32) != 0) {
        snprintf(why, sizeof why, "the index file belongs to another gallery");
    } else if ((int64_t)stamp.generation != g->generation) {
        snprintf(why, sizeof why, "stale: built at generation %llu, the gallery is at %lld",
                 (unsigned long long)stamp.generation, (long long)g->generation);
    } else if (sm_hnsw_load(&h, g->hnsw_path, rows, g->n, g->dim, &stamp, &fids, &e2)) {
        snprintf(why, sizeof why, "%s", e2.msg);
    } else if (g->n > 0 && memcmp(fids, g->ids, sizeof(int64_t) * (size_t)g->n) != 0) {
        snprintf(why, sizeof why, "its items differ from the gallery's");
    } else {
        free(fids);
        g->hnsw = h;
        if (note && cap) note[0] = '\0';
        return SM_OK;
    }
    free(fids);
    sm_hnsw_free(h);
    sm_hnsw_config cfg;
    sm_hnsw_config_default(&cfg);
    if (o->hnsw_m > 0) cfg.m = o->hnsw_m;
    if (o->hnsw_efc > 0) cfg.ef_construction = o->hnsw_efc;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sm_status st = sm_hnsw_build(&h, rows, g->n, g->dim, &cfg, err);
    if (st) return st;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    char saved[600] = "";
    if (!g->readonly) {
        sm_hnsw_stamp s2 = {.generation = (uint64_t)g->generation};
        memcpy(s2.uuid, g->uuid, 16);
        memcpy(s2.model, g->model, 32);
        if (sm_hnsw_save(h, g->hnsw_path, &s2, g->ids, &e2))
            snprintf(saved, sizeof saved, "; not saved: %s", e2.msg);
        else
            snprintf(saved, sizeof saved, "; saved to '%s'", g->hnsw_path);
    }
    g->hnsw = h;
    if (note && cap)
        snprintf(note, cap, "HNSW index built over %lld items in %.2f s (%s)%s", (long long)g->n, secs, why, saved);
    return SM_OK;
}

sm_status sm_gallery_prepare(sm_gallery *g, const sm_gallery_search_opts *opts, char *note, size_t note_cap,
                             sm_err *err)
{
    sm_gallery_search_opts o = {0};
    if (opts) o = *opts;
    if (note && note_cap) note[0] = '\0';
    sm_status st = fresh_table(g, err);
    if (st) return st;
    switch (resolve(g, o.index)) {
    case SM_GALLERY_INDEX_HNSW:
        return prepare_hnsw(g, &o, note, note_cap, err);
    case SM_GALLERY_INDEX_INT8:
        if (g->dtype == SM_GALLERY_F32 && !g->qcodes) {
            size_t nn = (size_t)(g->n > 0 ? g->n : 1);
            g->qcodes = malloc(nn * (size_t)g->dim);
            g->qscales = malloc(sizeof(float) * nn);
            if (!g->qcodes || !g->qscales) {
                free_derived(g);
                return sm_fail(err, SM_ERR_NOMEM, "out of memory quantising %lld rows", (long long)g->n);
            }
            sm_q8_encode(g->qcodes, g->qscales, g->emb, g->n, g->dim);
        }
        return SM_OK;
    default:
        return SM_OK;
    }
}

sm_status sm_gallery_search(sm_gallery *g, const float *q, int64_t nq, int64_t d, int64_t k,
                            const sm_gallery_search_opts *opts, int64_t *ids, float *sims, sm_err *err)
{
    sm_gallery_search_opts o = {0};
    if (opts) o = *opts;
    if (k < 1 || k > SM_INDEX_MAX_K)
        return sm_fail(err, SM_ERR_ARG, "k must be in 1..%d (got %lld)", SM_INDEX_MAX_K, (long long)k);
    if (nq < 0 || (nq > 0 && (!q || !ids || !sims)))
        return sm_fail(err, SM_ERR_ARG, "bad query arrays (nq %lld)", (long long)nq);
    if (d != g->dim)
        return sm_fail(err, SM_ERR_SHAPE, "dimension mismatch: the query has %lld dimensions, gallery '%s' holds %lld-d embeddings",
                       (long long)d, g->path, (long long)g->dim);
    if (o.ef < 0 || o.rerank < 0 || o.rerank > SM_INDEX_MAX_K)
        return sm_fail(err, SM_ERR_ARG, "bad search options (ef %lld, rerank %lld)", (long long)o.ef, (long long)o.rerank);
    if (nq == 0) return SM_OK;
    float *uq = malloc(sizeof(float) * (size_t)(nq * d));
    int64_t *rows = malloc(sizeof(int64_t) * (size_t)(nq * k));
    sm_status st = SM_OK;
    if (!uq || !rows) {
        st = sm_fail(err, SM_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < nq; i++)
        if (!unit_row(uq + i * d, q + i * d, d)) {
            st = sm_fail(err, SM_ERR_NAN, "query %lld is not finite or is zero", (long long)i);
            goto done;
        }
    if ((st = sm_gallery_prepare(g, &o, NULL, 0, err))) goto done;
    switch (resolve(g, o.index)) {
    case SM_GALLERY_INDEX_HNSW:
        st = sm_hnsw_search(g->hnsw, uq, nq, k, o.ef > 0 ? o.ef : 64, rows, sims, err);
        break;
    case SM_GALLERY_INDEX_INT8:
        if (g->dtype == SM_GALLERY_F32)
            st = sm_index_q8_search(g->qcodes, g->qscales, g->n, d, uq, nq, k, g->emb, o.rerank, rows, sims, err);
        else
            st = sm_index_q8_search(g->codes, g->scales, g->n, d, uq, nq, k, NULL, 0, rows, sims, err);
        break;
    default:
        if (g->dtype == SM_GALLERY_F32)
            st = sm_index_flat_search(g->emb, g->n, d, uq, nq, k, rows, sims, err);
        else
            st = sm_index_q8_search(g->codes, g->scales, g->n, d, uq, nq, k, NULL, 0, rows, sims, err);
        break;
    }
    if (st) goto done;
    for (int64_t i = 0; i < nq * k; i++) ids[i] = rows[i] >= 0 ? g->ids[rows[i]] : -1;
done:
    free(uq);
    free(rows);
    return st;
}

/* ------------------------------------------------------------- threshold */

sm_status sm_gallery_set_threshold(sm_gallery *g, float t, double far, double tar, const char *data, sm_err *err)
{
    if (g->readonly) return sm_fail(err, SM_ERR_ARG, "gallery '%s' is open read-only", g->path);
    if (!isfinite(t)) return sm_fail(err, SM_ERR_ARG, "threshold must be finite (got %g)", (double)t);
    char *sql = sqlite3_mprintf("BEGIN IMMEDIATE;"
                                "INSERT OR REPLACE INTO meta VALUES ('threshold', '%.9g'), ('threshold_far', '%.9g'),"
                                " ('threshold_tar', '%.9g'), ('threshold_data', '%q');"
                                "COMMIT;",
                                (double)t, far, tar, data ? data : "");
    if (!sql) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    int rc = sqlite3_exec(g->db, sql, NULL, NULL, NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK) {
        sm_status st = sql_fail(g->path, g->db, rc, err, "storing the threshold");
        sqlite3_exec(g->db, "ROLLBACK", NULL, NULL, NULL);
        return st;
    }
    return SM_OK;
}
