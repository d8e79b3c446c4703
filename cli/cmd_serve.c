/* cmd_serve.c - `simile serve`: the HTTP API and the web page (include/simile.h, "service").
 *
 *   simile serve --model M --gallery G --port 8080 [--listen 127.0.0.1] [--token-file F]
 *                [--threads N] [--max-body BYTES] [--max-conns N] [--max-conns-per-ip N]
 *                [--timeout S] [--request-timeout S]
 *
 * Prints one line "simile serve: listening on http://ADDR:PORT/ (...)" on
 * stdout once it accepts connections (with --port 0 the port chosen by the
 * system), then serves until SIGINT or SIGTERM, and stops cleanly (requests
 * in flight finish). */
#include "cli.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* Reads the token: the file's first line, surrounding whitespace removed. */
static char *read_token(const char *path)
{
    sm_err err = {0};
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err.msg, sizeof err.msg, "cannot open token file '%s': %s", path, strerror(errno));
        die(&err, NULL);
    }
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = buf;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
    size_t len = strcspn(p, "\r\n");
    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
    p[len] = '\0';
    if (!len) {
        snprintf(err.msg, sizeof err.msg, "token file '%s' is empty", path);
        die(&err, "put a secret (e.g. from 'head -c 24 /dev/urandom | base64') on its first line");
    }
    char *t = strdup(p);
    if (!t) die(&err, NULL);
    return t;
}

int cmd_serve(int argc, char **argv)
{
    opt o[] = {{"model", "M", "checkpoint that embeds the images (required)", NULL},
               {"gallery", "G", "gallery file (created if missing) (required)", NULL},
               {"port", "P", "TCP port (required; 0: any free port, printed at start)", NULL},
               {"listen", "ADDR", "address to listen on (default 127.0.0.1; 0.0.0.0 or :: for every interface)", NULL},
               {"token-file", "F", "require 'Authorization: Bearer <first line of F>' on POST/DELETE /v1/items", NULL},
               {"threads", "N", "worker threads (default: all cores)", NULL},
               {"max-body", "BYTES", "largest request body (default 16777216)", NULL},
               {"max-conns", "N", "simultaneous connections (default 256)", NULL},
               {"max-conns-per-ip", "N", "simultaneous connections from one address (default 64)", NULL},
               {"timeout", "S", "close connections idle for S seconds (default 10)", NULL},
               {"request-timeout", "S", "a request (headers and body) must arrive within S seconds, else 408 (default 30)", NULL},
               {NULL, NULL, NULL, NULL}};
    prog_cmd = "simile serve";
    parse(argc, argv, 2, o, "simile serve --model M --gallery G --port P [--listen ADDR] [--token-file F]",
          "Serves the gallery over HTTP: POST /v1/search, POST /v1/embed, GET/POST /v1/items,\n"
          "GET/DELETE /v1/items/ID, GET /v1/items/ID/image, GET /healthz, GET /metrics, and a web page at /.\n"
          "Errors are JSON {\"error\", \"detail\"}. Stops on SIGINT or SIGTERM.");
    if (!get(o, "model", NULL)) die_usage("--model is required");
    if (!get(o, "gallery", NULL)) die_usage("--gallery is required");
    if (!get(o, "port", NULL)) die_usage("--port is required (0 picks a free one)");
    sm_serve_config cfg = {
        .model_path = get(o, "model", NULL),
        .gallery_path = get(o, "gallery", NULL),
        .listen = get(o, "listen", "127.0.0.1"),
        .port = (int)get_int(o, "port", 0, 0, 65535),
        .threads = (int)get_int(o, "threads", 0, 0, 64),
        .max_body = (size_t)get_int(o, "max-body", 16 << 20, 1024, (int64_t)1 << 32),
        .max_conns = (int)get_int(o, "max-conns", 256, 1, 65536),
        .max_conns_per_ip = (int)get_int(o, "max-conns-per-ip", 64, 1, 65536),
        .timeout_s = (int)get_int(o, "timeout", 10, 1, 3600),
        .request_timeout_s = (int)get_int(o, "request-timeout", 30, 1, 3600),
    };
    char *token = get(o, "token-file", NULL) ? read_token(get(o, "token-file", NULL)) : NULL;
    cfg.token = token;
    /* the server's threads inherit this mask: only sigwait below sees the signals */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    sm_err err = {0};
    sm_server *s = NULL;
    if (sm_serve_start(&s, &cfg, &err)) die(&err, NULL);
    const char *l = cfg.listen;
    printf("simile serve: listening on http://%s%s%s:%d/ (%lld items, token %s)\n", strchr(l, ':') ? "[" : "", l,
           strchr(l, ':') ? "]" : "", sm_serve_port(s), (long long)sm_serve_items(s), token ? "required" : "off");
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "simile serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    sm_serve_stop(s);
    free(token);
    return 0;
}
