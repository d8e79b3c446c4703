/* test_serve.c - the service's C API (simile.h, "service"), in-process.
 *
 * sm_serve_start on an ephemeral port over a saved model and a gallery made
 * through the gallery API, then requests through a plain socket: /healthz,
 * the page, a search by JSON embedding that finds the enrolled item, a 404,
 * a 413 refused from its Content-Length; sm_serve_port, sm_serve_items,
 * sm_serve_stop; a second server refused the port of the first, then given
 * it once the first stopped. Then the refusals of sm_serve_start, each with
 * a message and nothing left running: no config, no model path, a missing
 * model file, a file that is not a model, no gallery path, a bad listen
 * address. And sm_serve_thumb_path. The HTTP surface as a whole is
 * tests/test_serve.sh's (the command, against the same code). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "simile.h"
#include "harness.h"

/* Sends one request (Connection: close) to 127.0.0.1:port and reads the
 * whole answer into resp (NUL-terminated). Returns the HTTP status, -1 when
 * the exchange failed. */
static int http(int port, const char *method, const char *path, const char *headers, const char *body,
                char *resp, size_t cap)
{
    resp[0] = '\0';
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    char req[8192];
    size_t bl = body ? strlen(body) : 0;
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s%s",
                     method, path, headers ? headers : "", body ? "" : "\r\n");
    if (body) n += snprintf(req + n, sizeof req - (size_t)n, "Content-Length: %zu\r\n\r\n%s", bl, body);
    if (n < 0 || (size_t)n >= sizeof req || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return -1;
    }
    size_t got = 0;
    ssize_t r;
    while (got + 1 < cap && (r = recv(fd, resp + got, cap - 1 - got, 0)) > 0) got += (size_t)r;
    resp[got] = '\0';
    close(fd);
    int code = -1;
    if (sscanf(resp, "HTTP/1.%*d %d", &code) != 1) return -1;
    return code;
}

/* A 16-d mnist-net with an ArcFace head, saved at mp; its identity in id. */
static int make_model(const char *mp, uint8_t id[32])
{
    char spec[4096];
    sm_err err = {0};
    sm_head_config hc;
    sm_model *m = NULL;
    int ok = sm_head_config_default(&hc, "arcface", &err) == SM_OK &&
             sm_zoo_spec("mnist-net", 16, spec, sizeof spec, &err) != NULL &&
             sm_model_new(&m, spec, &hc, 10, 1, &err) == SM_OK && sm_model_save(m, mp, NULL, &err) == SM_OK;
    if (ok) sm_model_identity(m, id);
    else fprintf(stderr, "make_model: %s\n", err.msg);
    sm_model_free(m);
    return ok;
}

static void test_serving(void)
{
    const char *mp = th_tmp("m.safetensors");
    const char *gp = th_tmp("g.db");
    sm_err err = {0};
    uint8_t id[32];
    CHECK(make_model(mp, id));
    /* a gallery of one item, enrolled through the gallery API */
    sm_gallery_model gm = {.dim = 16, .name = mp};
    memcpy(gm.id, id, 32);
    sm_gallery_options co = {.create = true};
    sm_gallery *g = NULL;
    float e[16];
    for (int i = 0; i < 16; i++) e[i] = (float)(i % 5) - 2.0f;
    sm_gallery_item it = {.label = "bag", .embedding = e};
    int64_t iid = 0, added = 0;
    CHECK(sm_gallery_open(&g, gp, &gm, &co, &err) == SM_OK);
    CHECK(g && sm_gallery_enroll(g, &it, 1, &iid, &added, &err) == SM_OK && iid == 1 && added == 1);
    sm_gallery_close(g);

    sm_serve_config cfg = {.model_path = mp, .gallery_path = gp, .port = 0, .threads = 2};
    sm_server *s = NULL;
    CHECKF(sm_serve_start(&s, &cfg, &err) == SM_OK, "%s", err.msg);
    if (!s) return;
    int port = sm_serve_port(s);
    CHECKF(port > 0 && port < 65536, "port %d", port);
    CHECK(sm_serve_items(s) == 1);
    static char resp[1 << 16];
    CHECKF(http(port, "GET", "/healthz", NULL, NULL, resp, sizeof resp) == 200 && strstr(resp, "\"items\":1"),
           "%.300s", resp);
    CHECKF(http(port, "GET", "/", NULL, NULL, resp, sizeof resp) == 200 && strstr(resp, "<title>simile"),
           "%.300s", resp);
    /* the stored embedding finds its item at similarity 1 */
    char body[1024];
    int n = snprintf(body, sizeof body, "{\"embedding\":[");
    for (int i = 0; i < 16; i++) n += snprintf(body + n, sizeof body - (size_t)n, "%s%g", i ? "," : "", (double)e[i]);
    snprintf(body + n, sizeof body - (size_t)n, "]}");
    CHECKF(http(port, "POST", "/v1/search?k=1", "Content-Type: application/json\r\n", body, resp, sizeof resp) == 200 &&
               strstr(resp, "\"results\":[{\"id\":1,\"label\":\"bag\""),
           "%.300s", resp);
    CHECKF(http(port, "GET", "/v1/items/99", NULL, NULL, resp, sizeof resp) == 404 && strstr(resp, "\"error\""),
           "%.300s", resp);
    /* a body announced over max_body (16 MiB by default): 413 before any of it is read */
    CHECKF(http(port, "POST", "/v1/search", "Content-Type: image/png\r\nContent-Length: 999999999\r\n", NULL, resp,
                sizeof resp) == 413,
           "%.300s", resp);

    /* a second server cannot take the same port */
    sm_serve_config c2 = cfg;
    c2.port = port;
    sm_server *s2 = NULL;
    CHECKF(sm_serve_start(&s2, &c2, &err) == SM_ERR_IO && !s2 && strstr(err.msg, "port"), "%s", err.msg);
    sm_serve_stop(s);
    CHECK(http(port, "GET", "/healthz", NULL, NULL, resp, sizeof resp) == -1);   /* nobody listens */
    /* and once the first stopped, a new one takes its port at once (its
     * closed connections in TIME_WAIT do not block the bind) and serves the
     * same gallery */
    s = NULL;
    CHECKF(sm_serve_start(&s, &c2, &err) == SM_OK, "%s", err.msg);
    if (s) {
        CHECK(sm_serve_port(s) == port && sm_serve_items(s) == 1);
        CHECK(http(port, "GET", "/healthz", NULL, NULL, resp, sizeof resp) == 200);
    }
    sm_serve_stop(s);
    sm_serve_stop(NULL);   /* a no-op */
}

static void test_refusals(void)
{
    sm_err err = {0};
    sm_server *s = NULL;
    const char *mp = th_tmp("m.safetensors");   /* made by test_serving */
    CHECK(sm_serve_start(&s, NULL, &err) == SM_ERR_ARG && !s && err.msg[0]);
    sm_serve_config cfg = {.gallery_path = th_tmp("r.db")};
    CHECKF(sm_serve_start(&s, &cfg, &err) == SM_ERR_ARG && !s && strstr(err.msg, "model"), "%s", err.msg);
    cfg.model_path = th_tmp("none.safetensors");
    sm_status st = sm_serve_start(&s, &cfg, &err);
    CHECKF(st != SM_OK && !s && strstr(err.msg, "none.safetensors"), "%d %s", (int)st, err.msg);
    const char *junk = th_tmp("junk.safetensors");
    FILE *f = fopen(junk, "w");
    if (f) {
        fputs("not a checkpoint at all", f);
        fclose(f);
    }
    cfg.model_path = junk;
    st = sm_serve_start(&s, &cfg, &err);
    CHECKF(st != SM_OK && !s && strstr(err.msg, "junk.safetensors"), "%d %s", (int)st, err.msg);
    cfg.model_path = mp;
    cfg.gallery_path = NULL;
    CHECKF(sm_serve_start(&s, &cfg, &err) == SM_ERR_ARG && !s && strstr(err.msg, "gallery"), "%s", err.msg);
    cfg.gallery_path = th_tmp("r.db");
    cfg.listen = "not-an-address";
    CHECKF(sm_serve_start(&s, &cfg, &err) == SM_ERR_ARG && !s && strstr(err.msg, "not-an-address"), "%s", err.msg);
    sm_serve_stop(s);
}

static void test_thumb_path(void)
{
    char buf[256];
    const char *hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    CHECK(sm_serve_thumb_path(buf, sizeof buf, "/data/g.db", hex) &&
          !strcmp(buf, "/data/g.db.images/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.png"));
    CHECK(!sm_serve_thumb_path(buf, sizeof buf, "/data/g.db", "../../etc/passwd"));
    CHECK(!sm_serve_thumb_path(buf, sizeof buf, "/data/g.db",
                               "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"));
    CHECK(!sm_serve_thumb_path(buf, 20, "/data/g.db", hex));   /* does not fit */
    CHECK(!sm_serve_thumb_path(buf, sizeof buf, NULL, hex));
}

int main(void)
{
    if (th_tmp_make("serve")) return 1;
    test_serving();
    test_refusals();
    test_thumb_path();
    th_tmp_remove();
    return th_done();
}
