/* serve.c - the HTTP service (simile.h, "service"): libmicrohttpd + jansson over the
 * model and the gallery, and the built-in web page.
 *
 * A request goes through the access handler in three phases, as
 * libmicrohttpd calls it: (1) headers only: route, method, token and the
 * declared Content-Length are checked, so that a wrong token or a 1 GB
 * Content-Length is answered before a single body byte is read; (2) body
 * chunks: appended (raw or through the multipart parser) while the running
 * total stays within max_body, else 413 at once (written on the socket:
 * "aborting a connection"); (3) the body is complete: the endpoint runs.
 * Decoding and embedding happen outside the gallery lock; only the gallery
 * calls are serialised. A watchdog thread answers 408 to a connection whose
 * request has not arrived in full within request_timeout_s, in any phase
 * before (3), including headers that never end. */
#include "simile.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "ckpt.h"
#include "gemm.h"
#include "index.h"
#include "status.h"
#include "webpage.h"

/* Text fields of a multipart form (label, k, threshold) are short. */
#define FIELD_MAX 1024
/* Items per GET /v1/items page at most. */
#define PAGE_MAX 1000
/* A stored thumbnail larger than this is not ours (they are small PNGs). */
#define THUMB_FILE_MAX ((size_t)16 << 20)
/* Sockets answered by abort_conn_locked are drained (their unread input read and
 * discarded) before they are closed, so that the kernel sends FIN, not RST,
 * and the client reads the answer instead of "connection reset": at most
 * LINGER_MAX at once, each for LINGER_S seconds and LINGER_BYTES bytes (a
 * client that keeps sending is cut off then). Beyond LINGER_MAX a socket is
 * closed at once (the answer may then be lost). */
#define LINGER_MAX 64
#define LINGER_S 2.0
#define LINGER_BYTES ((size_t)32 << 20)
/* The watchdog wakes at least this often (ms): the resolution of the request
 * deadline. */
#define WATCHDOG_TICK_MS 100

/* ------------------------------------------------------------ endpoints */

typedef enum ep {
    EP_PAGE, EP_HEALTHZ, EP_METRICS, EP_SEARCH, EP_EMBED, EP_ITEMS_LIST, EP_ITEMS_ADD, EP_ITEM_GET,
    EP_ITEM_DELETE, EP_ITEM_IMAGE, EP_NOT_FOUND, EP_COUNT
} ep;
static const char *ep_names[EP_COUNT] = {"page", "healthz", "metrics", "search", "embed", "items_list", "items_add",
                                         "item_get", "item_delete", "item_image", "other"};

/* Status codes counted in /metrics (anything else counts as "other"). */
static const int counted_codes[] = {200, 201, 400, 401, 404, 405, 408, 409, 413, 415, 422, 500, 503, 0};
#define NCODES ((int)(sizeof counted_codes / sizeof counted_codes[0]))
/* Latency histogram bucket bounds in seconds (Prometheus' default set, to 10 s). */
static const double lat_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBOUNDS ((int)(sizeof lat_bounds / sizeof lat_bounds[0]))

typedef struct metrics {
    pthread_mutex_t mu;
    uint64_t count[EP_COUNT][NCODES];
    uint64_t hist[EP_COUNT][NBOUNDS + 1];
    double sum[EP_COUNT];
    uint64_t rejected_early;   /* answered from the headers alone (401/413 before the body) */
} metrics;

/* --------------------------------------------------------------- server */

typedef struct model_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sm_model **m;
    bool *busy;
    int n;
} model_pool;

/* A TCP connection as the watchdog sees it (one per MHD connection, from the
 * STARTED to the CLOSED notification; guarded by sm_server.cmu). */
typedef enum conn_state {
    CONN_RECEIVING,   /* a request is arriving (or may arrive): the deadline runs */
    CONN_BUSY,        /* the request is in: it runs or its response is sent */
    CONN_ABORTED      /* answered by abort_conn_locked; MHD's fd reads end-of-file */
} conn_state;

typedef struct conn {
    int fd;                   /* MHD's socket: never closed here (MHD owns it) */
    struct timespec t0;       /* when the current request may have begun */
    conn_state state;
    ep ep;                    /* the request's endpoint once its headers are in */
    struct conn *prev, *next;
} conn;

/* A socket that was answered and is being drained before it is closed. */
typedef struct drain_sock {
    int fd;                   /* our dup of the socket */
    struct timespec t0;
    size_t read;              /* bytes discarded so far */
} drain_sock;

struct sm_server {
    struct MHD_Daemon *d;
    sm_serve_config cfg;
    char *token;
    size_t token_len;
    model_pool pool;
    int64_t dim, in_c, in_h, in_w;
    pthread_mutex_t gmu;       /* every gallery call holds it */
    sm_gallery *g;
    char *gallery_path;
    bool thumbs;               /* <gallery>.images exists: thumbnails are kept */
    _Atomic int64_t items;
    int port;
    metrics mx;
    time_t started;
    /* the watchdog: request deadlines and lingering closes */
    pthread_mutex_t cmu;
    conn *conns;
    drain_sock lg[LINGER_MAX];
    int nlg;
    int dead_fd;              /* a socket whose peer is closed: reads end-of-file */
    int wake[2];              /* a pipe that wakes the watchdog (stop, a socket to drain) */
    pthread_t wd;
    bool wd_running;
    atomic_bool stopping;
};

int sm_serve_port(const sm_server *s) { return s->port; }
int64_t sm_serve_items(const sm_server *s) { return atomic_load(&((sm_server *)s)->items); }

static sm_model *pool_get(model_pool *p)
{
    pthread_mutex_lock(&p->mu);
    for (;;) {
        for (int i = 0; i < p->n; i++)
            if (!p->busy[i]) {
                p->busy[i] = true;
                pthread_mutex_unlock(&p->mu);
                return p->m[i];
            }
        pthread_cond_wait(&p->cv, &p->mu);
    }
}

static void pool_put(model_pool *p, sm_model *m)
{
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->n; i++)
        if (p->m[i] == m) p->busy[i] = false;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* -------------------------------------------------------------- request */

typedef struct req {
    ep ep;
    int64_t id;               /* /v1/items/{id} */
    struct timespec t0;
    bool responded;           /* a response is queued */
    int status;
    size_t total;             /* raw body bytes seen */
    bool json;                /* Content-Type application/json */
    /* the body (raw) or the multipart file field */
    uint8_t *body;
    size_t n, cap;
    struct MHD_PostProcessor *pp;
    bool multipart, form_bad;
    char label[FIELD_MAX + 1], k[FIELD_MAX + 1], threshold[FIELD_MAX + 1];
    bool has_label, has_k, has_threshold;
    size_t limit;             /* max_body */
} req;

static double now_s(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

static bool append(req *r, const void *p, size_t n, size_t limit)
{
    if (n > limit - r->n) return false;
    if (r->n + n > r->cap) {
        size_t c = r->cap ? r->cap : 4096;
        while (c < r->n + n) c *= 2;
        if (c > limit) c = limit;
        uint8_t *b = realloc(r->body, c);
        if (!b) return false;
        r->body = b;
        r->cap = c;
    }
    memcpy(r->body + r->n, p, n);
    r->n += n;
    return true;
}

/* ------------------------------------------------------------- responses */

static enum MHD_Result send_buf(struct MHD_Connection *c, req *r, int status, const char *ctype, void *buf, size_t n,
                                enum MHD_ResponseMemoryMode mode, const char *allow)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(n, buf, mode);
    if (!resp) {
        if (mode == MHD_RESPMEM_MUST_FREE) free(buf);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", ctype);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (allow) MHD_add_response_header(resp, "Allow", allow);
    if (status == MHD_HTTP_UNAUTHORIZED) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"simile\"");
    if (!strncmp(ctype, "text/html", 9))
        MHD_add_response_header(resp, "Content-Security-Policy",
                                "default-src 'none'; img-src 'self' blob: data:; style-src 'unsafe-inline'; "
                                "script-src 'unsafe-inline'; connect-src 'self'; form-action 'none'; "
                                "frame-ancestors 'none'");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    if (ret == MHD_YES) {
        r->responded = true;
        r->status = status;
    }
    return ret;
}

/* Sends j (consumed) as the response. */
static enum MHD_Result send_json(struct MHD_Connection *c, req *r, int status, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(j);
    if (!s) {
        static char oom[] = "{\"error\":\"internal\",\"detail\":\"out of memory\"}";
        return send_buf(c, r, 500, "application/json", oom, strlen(oom), MHD_RESPMEM_PERSISTENT, NULL);
    }
    return send_buf(c, r, status, "application/json", s, strlen(s), MHD_RESPMEM_MUST_FREE, NULL);
}

static enum MHD_Result send_err(struct MHD_Connection *c, req *r, int status, const char *code, const char *fmt, ...)
    SM_PRINTF(5, 6);
static enum MHD_Result send_err(struct MHD_Connection *c, req *r, int status, const char *code, const char *fmt, ...)
{
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return send_json(c, r, status, json_pack("{ssss}", "error", code, "detail", detail));
}

static enum MHD_Result send_405(struct MHD_Connection *c, req *r, const char *allow, const char *method)
{
    char detail[200];
    snprintf(detail, sizeof detail, "method %.20s not allowed here (allowed: %s)", method, allow);
    json_t *j = json_pack("{ssss}", "error", "method_not_allowed", "detail", detail);
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(j);
    if (!s) return MHD_NO;
    return send_buf(c, r, 405, "application/json", s, strlen(s), MHD_RESPMEM_MUST_FREE, allow);
}

/* ------------------------------------------------ aborting a connection */

/* libmicrohttpd 0.9.75 answers a request only through MHD_queue_response,
 * which it refuses in the middle of a body (a streamed body over max_body),
 * and it never calls us for a request whose headers do not end (slow-loris).
 * Such a connection is answered here, on its socket, under cmu:
 *  1. dup the socket: our fd keeps it open once MHD closes its own;
 *  2. write a whole HTTP response (status, JSON error, Connection: close)
 *     and shutdown(SHUT_WR): the client reads it, then end-of-file;
 *  3. dup2 a dead socket onto MHD's fd: the fd number MHD holds stays valid
 *     (nothing is closed under it, nothing can reuse it) but now reads
 *     end-of-file, so MHD closes the connection as if the client had gone,
 *     whatever state its parser is in, and never touches the real socket;
 *  4. hand our dup to the watchdog, which drains it and closes it (LINGER_*).
 * This is sound because MHD sends the CLOSED notification (conn_notify,
 * which takes cmu) before it closes a connection's fd (daemon.c,
 * MHD_cleanup_connections; checked on 0.9.75 by an fstat in the CLOSED
 * notification: open in 104 of 104 closes, aborted ones included), so under
 * cmu a tracked fd is MHD's and open; and
 * because the daemon polls with poll(), which looks fds up by number at each
 * call (an epoll set would keep watching the real socket through our dup). */
static bool abort_conn_locked(sm_server *s, conn *cn, int status, const char *code, const char *detail)
{
    if (cn->state == CONN_ABORTED) return false;
    cn->state = CONN_ABORTED;
    json_t *j = json_pack("{ssss}", "error", code, "detail", detail);
    char *body = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(j);
    const char *b = body ? body : "{\"error\":\"internal\",\"detail\":\"out of memory\"}";
    size_t bn = strlen(b);
    char head[320];
    int hn = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\r\n",
                      status, status == 408 ? "Request Timeout" : status == 413 ? "Payload Too Large" : "Error", bn);
    int fd = fcntl(cn->fd, F_DUPFD_CLOEXEC, 3);
    struct iovec iov[2] = {{head, (size_t)hn}, {(void *)b, bn}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    /* small: it fits the socket's send buffer, nothing having been sent yet */
    (void)sendmsg(fd >= 0 ? fd : cn->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    free(body);
    if (fd < 0 || dup2(s->dead_fd, cn->fd) < 0) {
        /* out of fds: let MHD read end-of-file from the socket itself (the
         * answer may then be lost to a reset) */
        shutdown(cn->fd, SHUT_RDWR);
        if (fd >= 0) close(fd);
        return true;
    }
    shutdown(fd, SHUT_WR);
    if (s->nlg == LINGER_MAX) {
        close(fd);
        return true;
    }
    drain_sock *l = &s->lg[s->nlg++];
    l->fd = fd;
    l->read = 0;
    clock_gettime(CLOCK_MONOTONIC, &l->t0);
    (void)!write(s->wake[1], "", 1);   /* poll it now (a full pipe is awake already) */
    return true;
}

/* Counts an answer that no request's completion will count (408 before or
 * during a request's body). */
static void count_code(sm_server *s, ep e, int status)
{
    int k = NCODES - 1;
    for (int i = 0; i < NCODES - 1; i++)
        if (counted_codes[i] == status) k = i;
    pthread_mutex_lock(&s->mx.mu);
    s->mx.count[e][k]++;
    pthread_mutex_unlock(&s->mx.mu);
}

/* The watchdog: drains the lingering sockets and answers 408 to the
 * connections whose request is not in by the deadline. */
static void *watchdog(void *arg)
{
    sm_server *s = arg;
    struct pollfd pf[LINGER_MAX + 1];
    char sink[64 << 10];   /* discarded input */
    while (!atomic_load(&s->stopping)) {
        pthread_mutex_lock(&s->cmu);
        int n = 0;
        pf[n++] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
        for (int i = 0; i < s->nlg; i++) pf[n++] = (struct pollfd){.fd = s->lg[i].fd, .events = POLLIN};
        pthread_mutex_unlock(&s->cmu);
        (void)poll(pf, (nfds_t)n, WATCHDOG_TICK_MS);
        char w[64];
        while (read(s->wake[0], w, sizeof w) > 0) {}
        pthread_mutex_lock(&s->cmu);
        for (int i = 0; i < s->nlg;) {
            drain_sock *l = &s->lg[i];
            bool done = false;
            for (int round = 0; round < 16 && !done; round++) {
                ssize_t got = recv(l->fd, sink, sizeof sink, MSG_DONTWAIT);
                if (got > 0) {
                    l->read += (size_t)got;
                    done = l->read > LINGER_BYTES;
                } else if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                    done = true;   /* the client closed (or reset): nothing more to wait for */
                } else {
                    break;
                }
            }
            if (done || now_s(&l->t0) > LINGER_S) {
                close(l->fd);
                *l = s->lg[--s->nlg];
            } else {
                i++;
            }
        }
        double limit = (double)s->cfg.request_timeout_s;
        for (conn *cn = s->conns; cn; cn = cn->next)
            if (cn->state == CONN_RECEIVING && now_s(&cn->t0) > limit) {
                char detail[160];
                snprintf(detail, sizeof detail, "the request did not arrive in full within %d s (headers and body)",
                         s->cfg.request_timeout_s);
                if (abort_conn_locked(s, cn, 408, "timeout", detail)) count_code(s, cn->ep, 408);
            }
        pthread_mutex_unlock(&s->cmu);
    }
    return NULL;
}

static void conn_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe)
{
    sm_server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn *cn = ci ? calloc(1, sizeof *cn) : NULL;
        *socket_context = cn;
        if (!cn) return;   /* untracked: only the idle timeout applies to it */
        cn->fd = ci->connect_fd;
        clock_gettime(CLOCK_MONOTONIC, &cn->t0);
        cn->state = CONN_RECEIVING;
        cn->ep = EP_NOT_FOUND;
        pthread_mutex_lock(&s->cmu);
        cn->next = s->conns;
        if (s->conns) s->conns->prev = cn;
        s->conns = cn;
        pthread_mutex_unlock(&s->cmu);
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        conn *cn = *socket_context;
        if (!cn) return;
        pthread_mutex_lock(&s->cmu);
        if (cn->prev) cn->prev->next = cn->next;
        else s->conns = cn->next;
        if (cn->next) cn->next->prev = cn->prev;
        pthread_mutex_unlock(&s->cmu);
        free(cn);
        *socket_context = NULL;
    }
}

static conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* The request on c is in (or answered from its headers): its deadline stops.
 * False when the watchdog answered it already. */
static bool conn_busy(sm_server *s, struct MHD_Connection *c, ep e)
{
    conn *cn = conn_of(c);
    if (!cn) return true;
    pthread_mutex_lock(&s->cmu);
    bool ok = cn->state != CONN_ABORTED;
    if (ok) cn->state = CONN_BUSY;
    cn->ep = e;
    pthread_mutex_unlock(&s->cmu);
    return ok;
}

/* Notes the endpoint of the request arriving on c (for the 408 counts). */
static void conn_set_ep(sm_server *s, struct MHD_Connection *c, ep e)
{
    conn *cn = conn_of(c);
    if (!cn) return;
    pthread_mutex_lock(&s->cmu);
    cn->ep = e;
    pthread_mutex_unlock(&s->cmu);
}

/* -------------------------------------------------------------- routing */

static bool parse_id(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > 18) return false;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1) return false;
    *out = v;
    return true;
}

/* The endpoint of (url, method); *allow gets the methods of a known path
 * when the method is not one of them (405). */
static ep route(const char *url, const char *m, int64_t *id, const char **allow)
{
    *allow = NULL;
    bool get = !strcmp(m, "GET") || !strcmp(m, "HEAD"), post = !strcmp(m, "POST"), del = !strcmp(m, "DELETE");
    if (!strcmp(url, "/") || !strcmp(url, "/index.html")) {
        if (get) return EP_PAGE;
        *allow = "GET, HEAD";
        return EP_NOT_FOUND;
    }
    if (!strcmp(url, "/healthz") || !strcmp(url, "/metrics")) {
        if (get) return url[1] == 'h' ? EP_HEALTHZ : EP_METRICS;
        *allow = "GET, HEAD";
        return EP_NOT_FOUND;
    }
    if (!strcmp(url, "/v1/search") || !strcmp(url, "/v1/embed")) {
        if (post) return url[4] == 's' ? EP_SEARCH : EP_EMBED;
        *allow = "POST";
        return EP_NOT_FOUND;
    }
    if (!strcmp(url, "/v1/items")) {
        if (get) return EP_ITEMS_LIST;
        if (post) return EP_ITEMS_ADD;
        *allow = "GET, HEAD, POST";
        return EP_NOT_FOUND;
    }
    static const char pre[] = "/v1/items/";
    if (!strncmp(url, pre, sizeof pre - 1)) {
        const char *p = url + sizeof pre - 1, *slash = strchr(p, '/');
        if (!slash) {
            if (!parse_id(p, strlen(p), id)) return EP_NOT_FOUND;
            if (get) return EP_ITEM_GET;
            if (del) return EP_ITEM_DELETE;
            *allow = "GET, HEAD, DELETE";
            return EP_NOT_FOUND;
        }
        if (!parse_id(p, (size_t)(slash - p), id) || strcmp(slash, "/image")) return EP_NOT_FOUND;
        if (get) return EP_ITEM_IMAGE;
        *allow = "GET, HEAD";
    }
    return EP_NOT_FOUND;
}

static bool takes_body(ep e) { return e == EP_SEARCH || e == EP_EMBED || e == EP_ITEMS_ADD; }
static bool mutating(ep e) { return e == EP_ITEMS_ADD || e == EP_ITEM_DELETE; }

/* Constant-time comparison of the Authorization header with "Bearer <token>". */
static bool authorized(const sm_server *s, struct MHD_Connection *c)
{
    if (!s->token) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7) != 0) return false;
    h += 7;
    size_t n = strlen(h);
    unsigned char diff = (unsigned char)(n != s->token_len);
    for (size_t i = 0; i < s->token_len; i++) diff |= (unsigned char)(s->token[i] ^ (i < n ? h[i] : 0));
    return diff == 0;
}

/* ------------------------------------------------------------ multipart */

static enum MHD_Result form_field(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                  const char *ctype, const char *enc, const char *data, uint64_t off, size_t size)
{
    (void)kind, (void)ctype, (void)enc, (void)off;
    req *r = cls;
    if (!key) return MHD_YES;
    if (!strcmp(key, "image") || (filename && !strcmp(key, "file"))) {
        if (!append(r, data, size, r->limit)) {
            r->form_bad = true;
            return MHD_NO;
        }
        return MHD_YES;
    }
    char *dst = NULL;
    bool *has = NULL;
    if (!strcmp(key, "label")) dst = r->label, has = &r->has_label;
    else if (!strcmp(key, "k")) dst = r->k, has = &r->has_k;
    else if (!strcmp(key, "threshold")) dst = r->threshold, has = &r->has_threshold;
    else return MHD_YES;   /* other fields are ignored */
    size_t have = *has ? strlen(dst) : 0;
    if (size > FIELD_MAX - have) {
        r->form_bad = true;
        return MHD_NO;
    }
    memcpy(dst + have, data, size);
    dst[have + size] = '\0';
    *has = true;
    return MHD_YES;
}

/* ----------------------------------------------------------- parameters */

/* A parameter from the form (multipart) or, failing that, the query string. */
static const char *param(struct MHD_Connection *c, const req *r, const char *name)
{
    if (!strcmp(name, "label") && r->has_label) return r->label;
    if (!strcmp(name, "k") && r->has_k) return r->k;
    if (!strcmp(name, "threshold") && r->has_threshold) return r->threshold;
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
}

static bool parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) return false;
    *out = v;
    return true;
}

/* -------------------------------------------------------------- images */

/* Status and code for an image that sm_image_decode refused. */
static int image_status(const uint8_t *buf, size_t n, sm_status st, const char **code)
{
    if (sm_image_sniff(buf, n) == SM_IMAGE_UNKNOWN || st == SM_ERR_UNSUPPORTED) {
        *code = "unsupported_media_type";
        return 415;
    }
    if (st == SM_ERR_ARG) {
        *code = "image_too_large";
        return 422;
    }
    if (st == SM_ERR_NOMEM) {
        *code = "internal";
        return 500;
    }
    *code = "bad_image";
    return 400;
}

/* A thumbnail (longest side at most SM_SERVE_THUMB) of img, PNG-encoded. */
static sm_status thumbnail_png(const sm_image *img, uint8_t **png, size_t *n, sm_err *err)
{
    int64_t w = img->w, h = img->h, side = w > h ? w : h;
    if (side <= SM_SERVE_THUMB) return sm_png_encode(img->px, w, h, img->c, png, n, err);
    int64_t tw = w * SM_SERVE_THUMB / side, th = h * SM_SERVE_THUMB / side;
    sm_image t = {0};
    sm_status st = sm_image_resize(img, tw < 1 ? 1 : tw, th < 1 ? 1 : th, &t, err);
    if (!st) st = sm_png_encode(t.px, t.w, t.h, t.c, png, n, err);
    sm_image_free(&t);
    return st;
}

/* The embedding of the image in body (emb: dim floats). On failure *status
 * and *code say how to answer, err the detail. *thumb (may be NULL) receives
 * a thumbnail PNG (malloc'd) when asked. */
static sm_status embed_image(sm_server *s, const uint8_t *body, size_t n, float *emb, uint8_t **thumb,
                             size_t *thumb_n, int *status, const char **code, sm_err *err)
{
    sm_image img = {0};
    sm_status st = sm_image_decode(body, n, &img, err);
    if (st) {
        *status = image_status(body, n, st, code);
        return st;
    }
    float *x = malloc(sizeof(float) * (size_t)(s->in_c * s->in_h * s->in_w));
    if (!x) {
        sm_image_free(&img);
        *status = 500, *code = "internal";
        return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    }
    sm_threads_set(1);
    sm_model *m = pool_get(&s->pool);
    st = sm_image_to_model_input(m, &img, x, err);
    if (!st) st = sm_model_embed(m, x, 1, emb, err);
    pool_put(&s->pool, m);
    free(x);
    if (!st && thumb) st = thumbnail_png(&img, thumb, thumb_n, err);
    sm_image_free(&img);
    if (st) *status = st == SM_ERR_UNSUPPORTED ? 415 : 500, *code = st == SM_ERR_UNSUPPORTED ? "unsupported_media_type" : "internal";
    return st;
}

/* The body must not be empty. */
static bool need_body(struct MHD_Connection *c, req *r, enum MHD_Result *ret)
{
    if (r->form_bad) {
        *ret = send_err(c, r, 400, "bad_request", "malformed multipart form (or a text field over %d bytes)", FIELD_MAX);
        return false;
    }
    if (r->n == 0) {
        *ret = send_err(c, r, 400, "bad_request",
                        r->multipart ? "the form has no \"image\" file field"
                                     : "empty body: send a PNG or JPEG image as the body, or a multipart form with an \"image\" field");
        return false;
    }
    return true;
}

/* ------------------------------------------------------------- handlers */

static json_t *item_json(const sm_gallery_entry *e)
{
    char url[64];
    snprintf(url, sizeof url, "/v1/items/%lld/image", (long long)e->id);
    json_t *j = json_pack("{sIsssIss}", "id", (json_int_t)e->id, "label", e->label, "created", (json_int_t)e->created,
                          "image", url);
    if (j) json_object_set_new(j, "content_sha256", e->content[0] ? json_string(e->content) : json_null());
    return j;
}

static enum MHD_Result h_search(sm_server *s, struct MHD_Connection *c, req *r, bool embed_only)
{
    enum MHD_Result ret;
    int64_t k = 5;
    const char *ks = param(c, r, "k");
    if (ks && !parse_i64(ks, 1, SM_INDEX_MAX_K, &k))
        return send_err(c, r, 400, "bad_request", "k must be an integer in 1..%d (got '%.40s')", SM_INDEX_MAX_K, ks);
    const char *ts = param(c, r, "threshold");
    bool use_t = false, given_t = false;
    float t = 0;
    if (ts && strcmp(ts, "none")) {
        char *end;
        double v = strtod(ts, &end);
        if (!*ts || *end || !isfinite(v))
            return send_err(c, r, 400, "bad_request", "threshold must be a number or 'none' (got '%.40s')", ts);
        t = (float)v;
        use_t = given_t = true;
    }
    float *q = malloc(sizeof(float) * (size_t)s->dim);
    if (!q) return send_err(c, r, 500, "internal", "out of memory");
    sm_err err = {0};
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (r->json && !embed_only) {
        json_error_t je;
        json_t *j = json_loadb((const char *)r->body, r->n, JSON_REJECT_DUPLICATES, &je);
        json_t *e = j ? json_object_get(j, "embedding") : NULL;
        const char *why = !j ? "malformed JSON" : !e || !json_is_array(e) ? "expected {\"embedding\": [numbers]}" : NULL;
        if (!why && (int64_t)json_array_size(e) != s->dim) why = "wrong embedding length";
        for (int64_t i = 0; !why && i < s->dim; i++) {
            json_t *v = json_array_get(e, (size_t)i);
            if (!json_is_number(v)) why = "the embedding must hold numbers only";
            else q[i] = (float)json_number_value(v);
        }
        json_decref(j);
        if (why) {
            free(q);
            if (!j) return send_err(c, r, 400, "bad_json", "%s: %s (line %d, column %d)", why, je.text, je.line, je.column);
            return send_err(c, r, 400, "bad_request", "%s (the model's embeddings have %lld dimensions)", why,
                            (long long)s->dim);
        }
    } else {
        if (!need_body(c, r, &ret)) {
            free(q);
            return ret;
        }
        int status;
        const char *code;
        if (embed_image(s, r->body, r->n, q, NULL, NULL, &status, &code, &err)) {
            free(q);
            return send_err(c, r, status, code, "%s", err.msg);
        }
    }
    double embed_ms = 1e3 * now_s(&t0);
    if (embed_only) {
        json_t *arr = json_array();
        for (int64_t i = 0; i < s->dim; i++) json_array_append_new(arr, json_real(q[i]));
        free(q);
        return send_json(c, r, 200, json_pack("{sIsosf}", "dim", (json_int_t)s->dim, "embedding", arr, "embed_ms", embed_ms));
    }
    float *sims = malloc(sizeof(float) * (size_t)k);
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)k);
    sm_gallery_entry *ents = calloc((size_t)k, sizeof *ents);
    bool *found = calloc((size_t)k, sizeof *found);
    if (!sims || !ids || !ents || !found) {
        free(q), free(sims), free(ids), free(ents), free(found);
        return send_err(c, r, 500, "internal", "out of memory");
    }
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    sm_gallery_info info;
    pthread_mutex_lock(&s->gmu);
    sm_status st = sm_gallery_info_get(s->g, &info, &err);
    if (!st) st = sm_gallery_search(s->g, q, 1, s->dim, k, NULL, ids, sims, &err);
    for (int64_t i = 0; !st && i < k && ids[i] >= 0; i++) st = sm_gallery_get(s->g, ids[i], &ents[i], &found[i], &err);
    pthread_mutex_unlock(&s->gmu);
    double search_ms = 1e3 * now_s(&t1);
    free(q);
    if (st) {
        for (int64_t i = 0; i < k; i++) sm_gallery_entry_clear(&ents[i]);
        free(sims), free(ids), free(ents), free(found);
        if (st == SM_ERR_NAN) return send_err(c, r, 400, "bad_request", "%s", err.msg);
        return send_err(c, r, 500, "internal", "%s", err.msg);
    }
    atomic_store(&s->items, info.count);
    if (!given_t && !(ts && !strcmp(ts, "none")) && info.has_threshold) use_t = true, t = info.threshold;
    json_t *res = json_array();
    for (int64_t i = 0; i < k && ids[i] >= 0; i++) {
        if (!found[i]) continue;   /* removed between the search and the lookup: impossible under the lock */
        json_t *it = item_json(&ents[i]);
        json_object_set_new(it, "rank", json_integer(i + 1));
        json_object_set_new(it, "similarity", json_real(sims[i]));
        json_object_set_new(it, "accepted", json_boolean(!use_t || sims[i] > t));
        json_array_append_new(res, it);
    }
    bool known = ids[0] >= 0 && found[0] && (!use_t || sims[0] > t);
    json_t *j = json_pack("{sIsIsbsosfsf}", "k", (json_int_t)k, "count", (json_int_t)info.count, "unknown", !known,
                          "results", res, "embed_ms", embed_ms, "search_ms", search_ms);
    json_object_set_new(j, "answer", known ? json_string(ents[0].label) : json_null());
    json_object_set_new(j, "threshold", use_t ? json_real(t) : json_null());
    for (int64_t i = 0; i < k; i++) sm_gallery_entry_clear(&ents[i]);
    free(sims), free(ids), free(ents), free(found);
    return send_json(c, r, 200, j);
}

bool sm_serve_thumb_path(char *buf, size_t cap, const char *gallery_path, const char *hex)
{
    if (!gallery_path || !hex || strlen(hex) != 64 || strspn(hex, "0123456789abcdef") != 64) return false;
    int k = snprintf(buf, cap, "%s.images/%s.png", gallery_path, hex);
    return k > 0 && (size_t)k < cap;
}

/* Writes the thumbnail beside the gallery under its content hash (best
 * effort; under gmu). True when this call created the file (the caller then
 * removes it if the enroll fails: no thumbnail without its item). */
static bool save_thumb(sm_server *s, const char *hex, const uint8_t *png, size_t n)
{
    char path[4096];
    if (!s->thumbs || !png || !sm_serve_thumb_path(path, sizeof path, s->gallery_path, hex)) return false;
    struct stat sb;
    if (stat(path, &sb) == 0) return false;
    sm_iov part = {png, n};
    sm_err e = {0};
    return sm_file_write_atomic(path, &part, 1, &e) == SM_OK;
}

/* Removes the thumbnail named by a content hash (under gmu). */
static void drop_thumb(sm_server *s, const char *hex)
{
    char path[4096];
    if (s->thumbs && sm_serve_thumb_path(path, sizeof path, s->gallery_path, hex)) (void)unlink(path);
}

static enum MHD_Result h_items_add(sm_server *s, struct MHD_Connection *c, req *r)
{
    enum MHD_Result ret;
    const char *label = param(c, r, "label");
    if (!label || !*label)
        return send_err(c, r, 400, "bad_request", "a non-empty label is required (form field or ?label=)");
    size_t ln = strlen(label);
    if (ln > 256) return send_err(c, r, 400, "bad_request", "label longer than 256 bytes");
    for (size_t i = 0; i < ln; i++)
        if ((unsigned char)label[i] < 0x20 || label[i] == 0x7f)
            return send_err(c, r, 400, "bad_request", "the label holds control characters");
    json_t *utf8 = json_string(label);   /* NULL when label is not valid UTF-8 */
    if (!utf8) return send_err(c, r, 400, "bad_request", "the label is not valid UTF-8");
    json_decref(utf8);
    if (!need_body(c, r, &ret)) return ret;
    float *emb = malloc(sizeof(float) * (size_t)s->dim);
    if (!emb) return send_err(c, r, 500, "internal", "out of memory");
    uint8_t hash[32], *png = NULL;
    size_t png_n = 0;
    char hex[65];
    sm_sha256 sh;
    sm_sha256_init(&sh);
    sm_sha256_update(&sh, r->body, r->n);
    sm_sha256_final(&sh, hash);
    sm_hex(hex, hash, 32);
    sm_err err = {0};
    int status;
    const char *code;
    if (embed_image(s, r->body, r->n, emb, &png, &png_n, &status, &code, &err)) {
        free(emb);
        return send_err(c, r, status, code, "%s", err.msg);
    }
    sm_gallery_item it = {.label = label, .source = NULL, .content = hash, .embedding = emb};
    int64_t id = 0, added = 0;
    sm_gallery_info info;
    pthread_mutex_lock(&s->gmu);
    bool fresh = save_thumb(s, hex, png, png_n);
    sm_status st = sm_gallery_enroll(s->g, &it, 1, &id, &added, &err);
    if (st && fresh) drop_thumb(s, hex);
    if (!st) st = sm_gallery_info_get(s->g, &info, &err);
    pthread_mutex_unlock(&s->gmu);
    free(emb);
    free(png);
    if (st) {
        if (st == SM_ERR_CONFLICT)   /* this image is enrolled under another label */
            return send_err(c, r, 409, "conflict", "%s", err.msg);
        if (st == SM_ERR_ARG) return send_err(c, r, 400, "bad_request", "%s", err.msg);
        if (st == SM_ERR_NAN)   /* the model maps this image to zero: nothing to search by */
            return send_err(c, r, 422, "unusable_image", "%s", err.msg);
        if (st == SM_ERR_IO) return send_err(c, r, 503, "unavailable", "%s", err.msg);
        return send_err(c, r, 500, "internal", "%s", err.msg);
    }
    atomic_store(&s->items, info.count);
    char url[64];
    snprintf(url, sizeof url, "/v1/items/%lld/image", (long long)id);
    return send_json(c, r, added ? 201 : 200,
                     json_pack("{sIsssbsssIss}", "id", (json_int_t)id, "label", label, "added", added > 0, "content_sha256",
                               hex, "count", (json_int_t)info.count, "image", url));
}

static enum MHD_Result h_items_list(sm_server *s, struct MHD_Connection *c, req *r)
{
    int64_t offset = 0, limit = 50, after = 0;
    const char *os = param(c, r, "offset"), *ls = param(c, r, "limit"), *as = param(c, r, "after");
    if (os && !parse_i64(os, 0, INT64_MAX, &offset))
        return send_err(c, r, 400, "bad_request", "offset must be an integer >= 0 (got '%.40s')", os);
    if (ls && !parse_i64(ls, 1, PAGE_MAX, &limit))
        return send_err(c, r, 400, "bad_request", "limit must be an integer in 1..%d (got '%.40s')", PAGE_MAX, ls);
    if (as && !parse_i64(as, 0, INT64_MAX, &after))
        return send_err(c, r, 400, "bad_request", "after must be an item id >= 0 (got '%.40s')", as);
    sm_err err = {0};
    sm_gallery_info info;
    sm_gallery_entry *e = NULL;
    int64_t ne = 0;
    pthread_mutex_lock(&s->gmu);
    sm_status st = sm_gallery_info_get(s->g, &info, &err);
    /* offset: skip whole pages by id (ids are in order, so this is a walk) */
    for (int64_t skip = offset; !st && skip > 0;) {
        int64_t chunk = skip < PAGE_MAX ? skip : PAGE_MAX, got = 0;
        sm_gallery_entry *tmp = NULL;
        st = sm_gallery_items(s->g, after, chunk, &tmp, &got, &err);
        if (!st && got > 0) after = tmp[got - 1].id;
        sm_gallery_entries_free(tmp, got);
        skip -= chunk;
        if (got < chunk) break;
    }
    if (!st) st = sm_gallery_items(s->g, after, limit, &e, &ne, &err);
    pthread_mutex_unlock(&s->gmu);
    if (st) return send_err(c, r, 500, "internal", "%s", err.msg);
    json_t *arr = json_array();
    for (int64_t i = 0; i < ne; i++) json_array_append_new(arr, item_json(&e[i]));
    json_t *j = json_pack("{sIsIsIso}", "count", (json_int_t)info.count, "offset", (json_int_t)offset, "limit",
                          (json_int_t)limit, "items", arr);
    json_object_set_new(j, "next_after", ne == limit ? json_integer(e[ne - 1].id) : json_null());
    sm_gallery_entries_free(e, ne);
    return send_json(c, r, 200, j);
}

static enum MHD_Result h_item(sm_server *s, struct MHD_Connection *c, req *r)
{
    sm_err err = {0};
    sm_gallery_entry e = {0};
    bool found = false;
    sm_gallery_info info = {0};
    pthread_mutex_lock(&s->gmu);
    sm_status st = sm_gallery_get(s->g, r->id, &e, &found, &err);
    if (!st && found && r->ep == EP_ITEM_DELETE) {
        st = sm_gallery_remove(s->g, &r->id, 1, &err);
        if (!st) drop_thumb(s, e.content);   /* content hashes are unique in a gallery */
        if (!st) st = sm_gallery_info_get(s->g, &info, &err);
    }
    pthread_mutex_unlock(&s->gmu);
    if (st) {
        sm_gallery_entry_clear(&e);
        return send_err(c, r, 500, "internal", "%s", err.msg);
    }
    if (!found) return send_err(c, r, 404, "not_found", "no item %lld in the gallery", (long long)r->id);
    json_t *j = item_json(&e);
    if (r->ep == EP_ITEM_DELETE) {
        atomic_store(&s->items, info.count);
        json_object_set_new(j, "removed", json_true());
        json_object_set_new(j, "count", json_integer(info.count));
    }
    sm_gallery_entry_clear(&e);
    return send_json(c, r, 200, j);
}

/* Reads a whole regular file of at most max bytes (the thumbnail store). */
static uint8_t *slurp(const char *path, size_t max, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    struct stat sb;
    uint8_t *buf = NULL;
    if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0 && (size_t)sb.st_size <= max) {
        buf = malloc((size_t)sb.st_size);
        if (buf && fread(buf, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size) {
            free(buf);
            buf = NULL;
        }
        *n = (size_t)sb.st_size;
    }
    fclose(f);
    return buf;
}

static enum MHD_Result h_item_image(sm_server *s, struct MHD_Connection *c, req *r)
{
    sm_err err = {0};
    sm_gallery_entry e = {0};
    bool found = false;
    pthread_mutex_lock(&s->gmu);
    sm_status st = sm_gallery_get(s->g, r->id, &e, &found, &err);
    pthread_mutex_unlock(&s->gmu);
    if (st) return send_err(c, r, 500, "internal", "%s", err.msg);
    if (!found) return send_err(c, r, 404, "not_found", "no item %lld in the gallery", (long long)r->id);
    uint8_t *png = NULL;
    size_t n = 0;
    /* the name comes from the gallery's hash (sm_serve_thumb_path checks it) */
    char path[4096];
    if (s->thumbs && sm_serve_thumb_path(path, sizeof path, s->gallery_path, e.content))
        png = slurp(path, THUMB_FILE_MAX, &n);
    if (!png && e.source) {   /* enrolled by the CLI: the path the gallery stores */
        sm_image img = {0};
        if (!sm_image_read(e.source, &img, &err)) {
            if (thumbnail_png(&img, &png, &n, &err)) png = NULL;
            sm_image_free(&img);
        }
    }
    sm_gallery_entry_clear(&e);
    if (!png) return send_err(c, r, 404, "no_image", "item %lld has no stored image", (long long)r->id);
    return send_buf(c, r, 200, "image/png", png, n, MHD_RESPMEM_MUST_FREE, NULL);
}

static enum MHD_Result h_metrics(sm_server *s, struct MHD_Connection *c, req *r)
{
    size_t cap = 64 << 10, len = 0;
    char *b = malloc(cap);
    if (!b) return send_err(c, r, 500, "internal", "out of memory");
#define OUT(...)                                                                 \
    do {                                                                         \
        int w_ = snprintf(b + len, cap - len, __VA_ARGS__);                      \
        if (w_ > 0 && (size_t)w_ < cap - len) len += (size_t)w_;                \
    } while (0)
    metrics *m = &s->mx;
    pthread_mutex_lock(&m->mu);
    OUT("# HELP simile_http_requests_total HTTP requests answered, by endpoint and status code.\n"
        "# TYPE simile_http_requests_total counter\n");
    for (int e = 0; e < EP_COUNT; e++)
        for (int k = 0; k < NCODES; k++)
            if (m->count[e][k]) {
                if (counted_codes[k])
                    OUT("simile_http_requests_total{endpoint=\"%s\",code=\"%d\"} %llu\n", ep_names[e], counted_codes[k],
                        (unsigned long long)m->count[e][k]);
                else
                    OUT("simile_http_requests_total{endpoint=\"%s\",code=\"other\"} %llu\n", ep_names[e],
                        (unsigned long long)m->count[e][k]);
            }
    OUT("# HELP simile_http_request_duration_seconds Time from the request's headers to its response.\n"
        "# TYPE simile_http_request_duration_seconds histogram\n");
    for (int e = 0; e < EP_COUNT; e++) {
        uint64_t cum = 0, tot = 0;
        for (int k = 0; k <= NBOUNDS; k++) tot += m->hist[e][k];
        if (!tot) continue;
        for (int k = 0; k < NBOUNDS; k++) {
            cum += m->hist[e][k];
            OUT("simile_http_request_duration_seconds_bucket{endpoint=\"%s\",le=\"%g\"} %llu\n", ep_names[e],
                lat_bounds[k], (unsigned long long)cum);
        }
        OUT("simile_http_request_duration_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"} %llu\n", ep_names[e],
            (unsigned long long)tot);
        OUT("simile_http_request_duration_seconds_sum{endpoint=\"%s\"} %.6f\n", ep_names[e], m->sum[e]);
        OUT("simile_http_request_duration_seconds_count{endpoint=\"%s\"} %llu\n", ep_names[e], (unsigned long long)tot);
    }
    OUT("# HELP simile_http_rejected_before_body_total Requests refused from their headers alone (token, size).\n"
        "# TYPE simile_http_rejected_before_body_total counter\n"
        "simile_http_rejected_before_body_total %llu\n",
        (unsigned long long)m->rejected_early);
    pthread_mutex_unlock(&m->mu);
    OUT("# HELP simile_gallery_items Items in the gallery.\n# TYPE simile_gallery_items gauge\nsimile_gallery_items %lld\n",
        (long long)atomic_load(&s->items));
    OUT("# HELP simile_uptime_seconds Seconds since the server started.\n# TYPE simile_uptime_seconds gauge\n"
        "simile_uptime_seconds %lld\n",
        (long long)(time(NULL) - s->started));
#undef OUT
    return send_buf(c, r, 200, "text/plain; version=0.0.4; charset=utf-8", b, len, MHD_RESPMEM_MUST_FREE, NULL);
}

static enum MHD_Result dispatch(sm_server *s, struct MHD_Connection *c, req *r)
{
    switch (r->ep) {
    case EP_PAGE:
        return send_buf(c, r, 200, "text/html; charset=utf-8", (void *)sm_webpage, sizeof sm_webpage,
                        MHD_RESPMEM_PERSISTENT, NULL);
    case EP_HEALTHZ:
        return send_json(c, r, 200,
                         json_pack("{sssIsI}", "status", "ok", "items", (json_int_t)atomic_load(&s->items), "dim",
                                   (json_int_t)s->dim));
    case EP_METRICS: return h_metrics(s, c, r);
    case EP_SEARCH: return h_search(s, c, r, false);
    case EP_EMBED: return h_search(s, c, r, true);
    case EP_ITEMS_LIST: return h_items_list(s, c, r);
    case EP_ITEMS_ADD: return h_items_add(s, c, r);
    case EP_ITEM_GET:
    case EP_ITEM_DELETE: return h_item(s, c, r);
    case EP_ITEM_IMAGE: return h_item_image(s, c, r);
    default: return send_err(c, r, 404, "not_found", "no such endpoint");
    }
}

/* ----------------------------------------------------- the access handler */

static enum MHD_Result too_large(sm_server *s, struct MHD_Connection *c, req *r, const char *how)
{
    return send_err(c, r, 413, "too_large", "request body %s the limit of %zu bytes", how, s->cfg.max_body);
}

/* Phase 1: the headers are in. */
static enum MHD_Result headers_in(sm_server *s, struct MHD_Connection *c, req *r, const char *url, const char *method)
{
    const char *allow;
    r->ep = route(url, method, &r->id, &allow);
    conn_set_ep(s, c, r->ep);
    if (allow) return send_405(c, r, allow, method);
    if (r->ep == EP_NOT_FOUND) return send_err(c, r, 404, "not_found", "no such endpoint: %.200s", url);
    if (mutating(r->ep) && !authorized(s, c)) {
        pthread_mutex_lock(&s->mx.mu);
        s->mx.rejected_early++;
        pthread_mutex_unlock(&s->mx.mu);
        return send_err(c, r, 401, "unauthorized", "this endpoint needs the header 'Authorization: Bearer <token>' "
                                                   "with the server's token");
    }
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(cl, &end, 10);
        if ((errno == ERANGE || (end != cl && !*end && v > s->cfg.max_body))) {
            pthread_mutex_lock(&s->mx.mu);
            s->mx.rejected_early++;
            pthread_mutex_unlock(&s->mx.mu);
            return too_large(s, c, r, "declared by Content-Length exceeds");
        }
    }
    if (takes_body(r->ep)) {
        const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (ct && !strncasecmp(ct, "multipart/form-data", 19)) {
            r->multipart = true;
            r->pp = MHD_create_post_processor(c, 64 << 10, form_field, r);
            if (!r->pp) return send_err(c, r, 400, "bad_request", "malformed multipart Content-Type (no boundary?)");
        } else if (ct && !strncasecmp(ct, "application/json", 16)) {
            r->json = true;
        }
    }
    return MHD_YES;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload, size_t *upload_n, void **con_cls)
{
    (void)version;
    sm_server *s = cls;
    req *r = *con_cls;
    if (!r) {   /* phase 1: headers */
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        *con_cls = r;
        clock_gettime(CLOCK_MONOTONIC, &r->t0);
        r->limit = s->cfg.max_body;
        enum MHD_Result ret = headers_in(s, c, r, url, method);
        if (r->responded && !conn_busy(s, c, r->ep)) return MHD_NO;
        return ret;
    }
    if (r->responded) {   /* answered already: drop whatever else arrives */
        *upload_n = 0;
        return MHD_YES;
    }
    if (*upload_n) {   /* phase 2: body */
        size_t n = *upload_n;
        *upload_n = 0;
        if (!takes_body(r->ep)) return MHD_YES;   /* ignored (GET/DELETE bodies) */
        if (n > s->cfg.max_body - r->total) {
            /* MHD refuses a response in the middle of a body: answer on the
             * socket and close (see "aborting a connection") */
            conn *cn = conn_of(c);
            if (cn) {
                char detail[160];
                snprintf(detail, sizeof detail, "request body exceeds the limit of %zu bytes", s->cfg.max_body);
                pthread_mutex_lock(&s->cmu);
                if (abort_conn_locked(s, cn, 413, "too_large", detail)) r->responded = true, r->status = 413;
                pthread_mutex_unlock(&s->cmu);
            }
            return MHD_NO;
        }
        r->total += n;
        if (r->pp) {
            if (!r->form_bad && MHD_post_process(r->pp, upload, n) != MHD_YES) r->form_bad = true;
        } else if (!append(r, upload, n, s->cfg.max_body)) {
            return send_err(c, r, 500, "internal", "out of memory");
        }
        return MHD_YES;
    }
    if (!conn_busy(s, c, r->ep)) return MHD_NO;   /* answered 408 meanwhile */
    return dispatch(s, c, r);                     /* phase 3 */
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    sm_server *s = cls;
    conn *cn = conn_of(c);
    if (cn) {   /* the next request on this connection starts its clock now */
        pthread_mutex_lock(&s->cmu);
        if (cn->state != CONN_ABORTED) {
            cn->state = CONN_RECEIVING;
            cn->ep = EP_NOT_FOUND;
            clock_gettime(CLOCK_MONOTONIC, &cn->t0);
        }
        pthread_mutex_unlock(&s->cmu);
    }
    req *r = *con_cls;
    if (!r) return;
    if (r->responded) {
        double dt = now_s(&r->t0);
        metrics *m = &s->mx;
        int k = NCODES - 1;
        for (int i = 0; i < NCODES - 1; i++)
            if (counted_codes[i] == r->status) k = i;
        int b = NBOUNDS;
        for (int i = 0; i < NBOUNDS; i++)
            if (dt <= lat_bounds[i]) {
                b = i;
                break;
            }
        pthread_mutex_lock(&m->mu);
        m->count[r->ep][k]++;
        m->hist[r->ep][b]++;
        m->sum[r->ep] += dt;
        pthread_mutex_unlock(&m->mu);
    }
    if (r->pp) MHD_destroy_post_processor(r->pp);
    free(r->body);
    free(r);
    *con_cls = NULL;
}

/* ---------------------------------------------------------- start, stop */

static void free_server(sm_server *s)
{
    if (!s) return;
    if (s->wd_running) {
        atomic_store(&s->stopping, true);
        (void)!write(s->wake[1], "", 1);
        pthread_join(s->wd, NULL);
    }
    for (int i = 0; i < s->nlg; i++) close(s->lg[i].fd);
    for (conn *cn = s->conns, *next; cn; cn = next) {   /* none once the daemon stopped */
        next = cn->next;
        free(cn);
    }
    if (s->dead_fd >= 0) close(s->dead_fd);
    if (s->wake[0] >= 0) close(s->wake[0]);
    if (s->wake[1] >= 0) close(s->wake[1]);
    pthread_mutex_destroy(&s->cmu);
    for (int i = 0; i < s->pool.n; i++) sm_model_free(s->pool.m[i]);
    free(s->pool.m);
    free(s->pool.busy);
    sm_gallery_close(s->g);
    free(s->token);
    free(s->gallery_path);
    pthread_mutex_destroy(&s->gmu);
    pthread_mutex_destroy(&s->mx.mu);
    pthread_mutex_destroy(&s->pool.mu);
    pthread_cond_destroy(&s->pool.cv);
    free(s);
}

sm_status sm_serve_start(sm_server **out, const sm_serve_config *cfg, sm_err *err)
{
    *out = NULL;
    if (!cfg || !cfg->model_path || !cfg->gallery_path)
        return sm_fail(err, SM_ERR_ARG, "serve needs a model and a gallery");
    if (cfg->port < 0 || cfg->port > 65535) return sm_fail(err, SM_ERR_ARG, "port must be in 0..65535 (got %d)", cfg->port);
    sm_server *s = calloc(1, sizeof *s);
    if (!s) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&s->gmu, NULL);
    pthread_mutex_init(&s->mx.mu, NULL);
    pthread_mutex_init(&s->pool.mu, NULL);
    pthread_cond_init(&s->pool.cv, NULL);
    pthread_mutex_init(&s->cmu, NULL);
    s->dead_fd = s->wake[0] = s->wake[1] = -1;
    s->cfg = *cfg;
    if (!s->cfg.listen) s->cfg.listen = "127.0.0.1";
    if (s->cfg.threads <= 0) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        s->cfg.threads = nc < 1 ? 1 : nc > 64 ? 64 : (int)nc;
    }
    if (!s->cfg.max_body) s->cfg.max_body = (size_t)16 << 20;
    if (s->cfg.max_conns <= 0) s->cfg.max_conns = 256;
    if (s->cfg.timeout_s <= 0) s->cfg.timeout_s = 10;
    if (s->cfg.request_timeout_s <= 0) s->cfg.request_timeout_s = 30;
    if (s->cfg.max_conns_per_ip <= 0) s->cfg.max_conns_per_ip = 64;
    s->started = time(NULL);
    sm_status st = SM_OK;
    if (cfg->token) {
        s->token = strdup(cfg->token);
        s->token_len = s->token ? strlen(s->token) : 0;
        if (!s->token) st = sm_fail(err, SM_ERR_NOMEM, "out of memory");
        else if (!s->token_len) st = sm_fail(err, SM_ERR_ARG, "the token is empty");
        s->cfg.token = s->token;
    }
    /* the address first: a typo should not cost a model load */
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    /* poll(), not epoll: abort_conn_locked relies on it */
    unsigned flags = MHD_USE_POLL_INTERNAL_THREAD;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (!st) {
        if (inet_pton(AF_INET, s->cfg.listen, &a4->sin_addr) == 1) {
            a4->sin_family = AF_INET;
            a4->sin_port = htons((uint16_t)cfg->port);
        } else if (inet_pton(AF_INET6, s->cfg.listen, &a6->sin6_addr) == 1) {
            a6->sin6_family = AF_INET6;
            a6->sin6_port = htons((uint16_t)cfg->port);
            flags |= MHD_USE_IPv6;
        } else {
            st = sm_fail(err, SM_ERR_ARG, "listen address '%s' is not an IPv4 or IPv6 address (e.g. 127.0.0.1, 0.0.0.0, ::1)",
                         s->cfg.listen);
        }
    }
    s->pool.n = s->cfg.threads;
    s->pool.m = calloc((size_t)s->pool.n, sizeof *s->pool.m);
    s->pool.busy = calloc((size_t)s->pool.n, sizeof *s->pool.busy);
    if (!st && (!s->pool.m || !s->pool.busy)) st = sm_fail(err, SM_ERR_NOMEM, "out of memory");
    for (int i = 0; !st && i < s->pool.n; i++) {
        st = sm_model_load(&s->pool.m[i], cfg->model_path, err);
        if (!st) st = sm_model_plan_inference(s->pool.m[i], 1, err);
    }
    sm_gallery_model gm = {0};
    if (!st) {
        sm_model_identity(s->pool.m[0], gm.id);
        gm.dim = s->dim = sm_model_dim(s->pool.m[0]);
        const char *slash = strrchr(cfg->model_path, '/');
        gm.name = slash ? slash + 1 : cfg->model_path;
        sm_model_input_shape(s->pool.m[0], &s->in_c, &s->in_h, &s->in_w);
        sm_gallery_options go = {.create = true};
        st = sm_gallery_open(&s->g, cfg->gallery_path, &gm, &go, err);
    }
    sm_gallery_info info;
    if (!st) st = sm_gallery_info_get(s->g, &info, err);
    if (!st) st = sm_gallery_prepare(s->g, NULL, NULL, 0, err);
    if (!st) {
        atomic_store(&s->items, info.count);
        s->gallery_path = strdup(cfg->gallery_path);
        char dir[4096];
        if (!s->gallery_path) st = sm_fail(err, SM_ERR_NOMEM, "out of memory");
        else if ((size_t)snprintf(dir, sizeof dir, "%s.images", s->gallery_path) < sizeof dir)
            /* without it thumbnails are unavailable; everything else works */
            s->thumbs = mkdir(dir, 0755) == 0 || errno == EEXIST;
    }
    if (!st) {   /* the watchdog, its wake-up pipe and the dead socket */
        int sp[2];
        if (pipe(s->wake) != 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
            st = sm_fail(err, SM_ERR_IO, "cannot create the watchdog's pipe or socket pair: %s", strerror(errno));
        } else {
            close(sp[1]);   /* sp[0] now reads end-of-file */
            s->dead_fd = sp[0];
            for (int i = 0; i < 2; i++) {
                fcntl(s->wake[i], F_SETFL, fcntl(s->wake[i], F_GETFL) | O_NONBLOCK);
                fcntl(s->wake[i], F_SETFD, FD_CLOEXEC);
            }
            if (pthread_create(&s->wd, NULL, watchdog, s) != 0)
                st = sm_fail(err, SM_ERR_NOMEM, "cannot start the watchdog thread");
            else s->wd_running = true;
        }
    }
    if (!st) {
        s->d = MHD_start_daemon(flags, 0, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->cfg.threads, MHD_OPTION_CONNECTION_LIMIT,
                                (unsigned)s->cfg.max_conns, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->cfg.timeout_s,
                                MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)s->cfg.max_conns_per_ip,
                                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 << 10), MHD_OPTION_NOTIFY_COMPLETED,
                                completed, s, MHD_OPTION_NOTIFY_CONNECTION, conn_notify, s, MHD_OPTION_END);
        if (!s->d)
            st = sm_fail(err, SM_ERR_IO, "cannot listen on %s port %d (in use, or not permitted?)", s->cfg.listen,
                         cfg->port);
    }
    if (st) {
        free_server(s);
        return st;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cfg->port;
    *out = s;
    return SM_OK;
}

void sm_serve_stop(sm_server *s)
{
    if (!s) return;
    if (s->d) MHD_stop_daemon(s->d);
    free_server(s);
}
