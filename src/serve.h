/* serve.h - the HTTP service: search, enroll and embed over HTTP, and the
 * web page (private).
 *
 * What it is: libmicrohttpd (one internal polling thread, a pool of worker
 * threads, a bounded number of connections, an inactivity timeout) in front
 * of a model and a gallery (simile.h, "gallery"). JSON in and out through jansson.
 *
 *   GET    /                      the web page (src/web/index.html, built in)
 *   GET    /healthz               {"status":"ok","items":N}
 *   GET    /metrics               Prometheus text: requests by endpoint and
 *                                 status, latency histograms, gallery size
 *   POST   /v1/search?k=&threshold=   image body (PNG/JPEG), multipart field
 *                                 "image", or JSON {"embedding":[...]}
 *   POST   /v1/embed              image body or multipart -> the embedding
 *   GET    /v1/items?offset=&limit=   (or after=ID) a page of items
 *   POST   /v1/items?label=       image body (label in the query) or multipart
 *                                 fields "image" and "label" -> enroll
 *   GET    /v1/items/{id}         one item
 *   GET    /v1/items/{id}/image   the item's thumbnail (PNG)
 *   DELETE /v1/items/{id}         remove
 * Errors are JSON {"error": code, "detail": message} with the status:
 *   400 malformed (parameters, JSON, multipart, corrupt image), 401 missing or
 *   wrong bearer token on POST/DELETE /v1/items when a token is set, 404, 405
 *   (with Allow), 409 the same image already enrolled under another label,
 *   408 the request did not arrive in full within request_timeout_s (slow
 *   headers or body; the connection is closed), 413 body over max_body
 *   (refused from its Content-Length before any byte is read, or as soon as
 *   a streamed body passes the limit; the connection is closed), 415 not a
 *   PNG or JPEG, 422 an image whose header exceeds simile.h's pixel limits
 *   (refused before any pixel memory is allocated) or that embeds to a zero
 *   or non-finite vector, 500 internal, 503 the gallery is busy or the disk
 *   is full (retry later).
 *
 * What it refuses to be: a file server. No part of a request is ever used as
 * a path. Thumbnails of items enrolled over HTTP are PNGs re-encoded from the
 * decoded upload (longest side at most SM_SERVE_THUMB), stored as
 * "<gallery>.images/<content sha256>.png" (names from the gallery's own
 * content hash); items enrolled by the CLI get theirs re-encoded from the
 * source path the gallery stores. A thumbnail lives exactly as long as its
 * item: an enroll that fails removes the one it wrote, a delete removes it.
 *
 * Slow clients: libmicrohttpd closes a connection idle for timeout_s, but
 * has no deadline for a whole request, so a client trickling one byte at a
 * time would keep its connection forever. A watchdog thread tracks every
 * connection (MHD_OPTION_NOTIFY_CONNECTION) and answers one whose request
 * is not in by request_timeout_s itself (serve.c, "Aborting a connection");
 * a body that passes max_body mid-stream is answered the same way, since
 * libmicrohttpd 0.9.75 does not queue a response in the middle of a body.
 * At most max_conns connections, max_conns_per_ip from one address.
 *
 * Concurrency: a gallery handle is for one thread at a time (simile.h, "gallery"), so
 * every gallery call runs under one mutex; an enroll is one SQLite
 * transaction and updates the in-memory index inside that same critical
 * section, so a search sees an item completely or not at all. Decoding and
 * embedding (the expensive part) run outside it, on a pool of model copies
 * (one per worker thread: a model's activation arena is not shareable).
 * Each worker runs OpenMP single-threaded: parallelism is across requests. */
#ifndef SM_SERVE_H
#define SM_SERVE_H
#include <stddef.h>
#include <stdint.h>

#include "simile.h"

/* Longest side of a stored thumbnail (pixels). */
#define SM_SERVE_THUMB 256

typedef struct sm_serve_config {
    const char *model_path;    /* checkpoint (required) */
    const char *gallery_path;  /* gallery (created if missing) (required) */
    const char *listen;        /* IPv4 or IPv6 literal; NULL: "127.0.0.1" */
    int port;                  /* 0: an ephemeral port (sm_serve_port tells which) */
    const char *token;         /* bearer token for the mutating endpoints; NULL: none */
    int threads;               /* worker threads (0: the number of cores, at most 64) */
    size_t max_body;           /* bytes (0: 16 MiB) */
    int max_conns;             /* simultaneous connections (0: 256) */
    int timeout_s;             /* idle connection timeout in seconds (0: 10) */
    int request_timeout_s;     /* a request's headers and body must arrive within
                                  this many seconds (0: 30); else 408 and closed.
                                  The clock starts when the connection opens or
                                  its previous response is sent, so below
                                  timeout_s an idle keep-alive connection gets
                                  the 408 (as RFC 9110 15.5.9 allows) */
    int max_conns_per_ip;      /* simultaneous connections from one address (0: 64) */
} sm_serve_config;

typedef struct sm_server sm_server;

/* Loads the model (threads copies), opens or creates the gallery, binds and
 * starts serving in background threads. *out is owned by the caller
 * (sm_serve_stop). Errors: those of sm_model_load and sm_gallery_open,
 * SM_ERR_ARG (bad listen address, config), SM_ERR_IO (cannot bind: the
 * port is in use or not permitted), SM_ERR_NOMEM. */
sm_status sm_serve_start(sm_server **out, const sm_serve_config *cfg, sm_err *err);

/* The port actually bound. */
int sm_serve_port(const sm_server *s);

/* Items in the gallery as the server last saw them. */
int64_t sm_serve_items(const sm_server *s);

/* Stops accepting, waits for the requests in flight, frees everything.
 * NULL is a no-op. */
void sm_serve_stop(sm_server *s);

/* Where the service keeps the thumbnail of the item whose content hash is hex
 * (64 lowercase hex digits) in the gallery at gallery_path:
 * "<gallery>.images/<hex>.png" into buf. False when hex is not such a hash or
 * the path does not fit in cap bytes. `simile remove` deletes them with it. */
bool sm_serve_thumb_path(char *buf, size_t cap, const char *gallery_path, const char *hex);

#endif
