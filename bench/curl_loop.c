/*
 * curl_loop.c: the baseline for bench/run.lua. A bare libcurl keep-alive loop: N sequential
 * POSTs of the same form body over one easy handle (curl_easy_perform), the body of each
 * answer appended to a growable buffer (as smm.core does) and then dropped.
 *
 *   build/bench/curl_loop URL N BODY [--warmup W] [--out FILE] [--times] [--smm OPTS]
 *   build/bench/curl_loop URL N BODY --parallel C [--reps R]    (see parallel_runs)
 *
 * W warm-up requests (default 20) open the connection and fill the caches first; they are not
 * measured. Prints one JSON object on stdout:
 *   {"n":N,"wall_ms":..,"cpu_ms":..,"bytes":<size of the last answer>,"status":<last HTTP status>
 *    [,"times_ms":[per-request wall ms, ...]]}
 * cpu_ms is getrusage(RUSAGE_SELF) user + system over the measured loop. --out FILE writes the
 * last answer's body to FILE (bench/run.lua decodes it with cjson for the services baseline).
 * Exits non-zero if any request fails or answers a status other than 200.
 *
 * --smm OPTS (diagnosis, not the baseline) adds, one by one, what smm.core does differently
 * from this bare loop (src/client.c configure_easy and smm_client_new, src/multi.c), to find
 * which of them costs. OPTS is "all" (what smm.core does now for a small answer: gzip,
 * agentlist,aeoff,proxy,noproxy,misc,multi,curlu) or a comma list of
 *   gzip   CURLOPT_ACCEPT_ENCODING "gzip"      enc    CURLOPT_ACCEPT_ENCODING "" (all of them)
 *   gzdef  CURLOPT_ACCEPT_ENCODING "gzip, deflate"
 *   ua     CURLOPT_USERAGENT "lua-smm/0.1.0"   agentlist  the same as a CURLOPT_HTTPHEADER line
 *   aelist "Accept-Encoding: gzip" as a CURLOPT_HTTPHEADER line (use with gzip)
 *   aeoff  "Accept-Encoding:" (empty), no such line sent (with gzip: as smm.core asks for a
 *          small answer)
 *   hdr    CURLOPT_HTTPHEADER Expect:, Content-Type: ...
 *   curlu  the URL pre-parsed once, as CURLOPT_CURLU (src/multi.c set_url)
 *   proxy  CURLOPT_PROXY ""                    noproxy  CURLOPT_NOPROXY ""
 *   misc   error buffer, header callback, timeouts, TCP keep-alive, protocols, HTTP/1.1
 *   multi  drive the transfer as smm_multi_run does: setopt POSTFIELDS each request (the URL
 *          only when it changes), curl_multi_add_handle, curl_multi_perform /
 *          curl_multi_poll, remove_handle
 * Names match as substrings: "noproxy" implies "proxy" (as in smm.core without a proxy).
 */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>

typedef struct {
  char *data;
  size_t len, cap;
} buffer;

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata) {
  buffer *b = userdata;
  size_t n = size * nmemb;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    char *p;
    while (cap < b->len + n + 1) cap *= 2;
    p = realloc(b->data, cap);
    if (p == NULL) return 0;
    b->data = p;
    b->cap = cap;
  }
  memcpy(b->data + b->len, ptr, n);
  b->len += n;
  b->data[b->len] = '\0';
  return n;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static double cpu_ms(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0 +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0;
}

static CURLM *multi; /* --smm multi */
static const char *g_body;

static size_t header_cb(char *ptr, size_t size, size_t nitems, void *userdata) {
  (void)ptr;
  (void)userdata;
  return size * nitems;
}

/* what smm_multi_run does for one request */
static CURLcode multi_perform(CURL *e) {
  int running = 0, left = 0, active = 1;
  CURLcode r = CURLE_OK;
  CURLMsg *msg;
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(g_body));
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, g_body);
  curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 0L);
  if (curl_multi_add_handle(multi, e) != CURLM_OK) return CURLE_FAILED_INIT;
  while (active) {
    if (curl_multi_perform(multi, &running) != CURLM_OK) return CURLE_FAILED_INIT;
    while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
      if (msg->msg != CURLMSG_DONE) continue;
      r = msg->data.result;
      curl_multi_remove_handle(multi, msg->easy_handle);
      active = 0;
    }
    if (active && running > 0 && curl_multi_poll(multi, NULL, 0, 1000, NULL) != CURLM_OK)
      return CURLE_FAILED_INIT;
  }
  return r;
}

static int one(CURL *e, buffer *b, long *status) {
  CURLcode r;
  b->len = 0;
  r = multi ? multi_perform(e) : curl_easy_perform(e);
  if (r != CURLE_OK) {
    fprintf(stderr, "curl_loop: %s\n", curl_easy_strerror(r));
    return -1;
  }
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
  if (*status != 200) {
    fprintf(stderr, "curl_loop: HTTP %ld\n", *status);
    return -1;
  }
  return 0;
}

/* --parallel C: N POSTs of BODY, C at a time over one multi handle and C easy handles, a
 * finished one replaced at once by the next (the sliding window smm_multi_run keeps), answers
 * collected and dropped, nothing decoded. The floor for the status measure: what this panel
 * allows at all, with no client work. Runs `reps` times after a warm-up run that opens the C
 * connections, and prints {"n":N,"parallel":C,"times_ms":[wall ms of each run]}. */
static int parallel_runs(const char *url, const char *body, long n, int conc, int reps) {
  CURLM *m = curl_multi_init();
  CURL **easy = calloc((size_t)conc, sizeof *easy);
  buffer *bufs = calloc((size_t)conc, sizeof *bufs);
  int r, i;
  if (m == NULL || easy == NULL || bufs == NULL) return 1;
  for (i = 0; i < conc; i++) {
    easy[i] = curl_easy_init();
    if (easy[i] == NULL) return 1;
    curl_easy_setopt(easy[i], CURLOPT_URL, url);
    curl_easy_setopt(easy[i], CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(easy[i], CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(easy[i], CURLOPT_WRITEDATA, (void *)&bufs[i]);
    curl_easy_setopt(easy[i], CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy[i], CURLOPT_PRIVATE, (void *)&bufs[i]);
  }
  printf("{\"n\":%ld,\"parallel\":%d,\"times_ms\":[", n, conc);
  for (r = -1; r < reps; r++) { /* run -1: the warm-up, conc requests */
    long todo = r < 0 ? conc : n, next = 0, done = 0;
    int running = 0, left;
    double w0 = now_ms();
    for (i = 0; i < conc && next < todo; i++, next++) curl_multi_add_handle(m, easy[i]);
    while (done < todo) {
      CURLMsg *msg;
      if (curl_multi_perform(m, &running) != CURLM_OK) return 1;
      while ((msg = curl_multi_info_read(m, &left)) != NULL) {
        CURL *e = msg->easy_handle;
        long status = 0;
        buffer *b;
        if (msg->msg != CURLMSG_DONE) continue;
        if (msg->data.result != CURLE_OK) {
          fprintf(stderr, "curl_loop: %s\n", curl_easy_strerror(msg->data.result));
          return 1;
        }
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        if (status != 200) {
          fprintf(stderr, "curl_loop: HTTP %ld\n", status);
          return 1;
        }
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&b);
        b->len = 0;
        curl_multi_remove_handle(m, e);
        done++;
        if (next < todo) {
          curl_multi_add_handle(m, e);
          next++;
        }
      }
      if (done < todo && curl_multi_poll(m, NULL, 0, 1000, NULL) != CURLM_OK) return 1;
    }
    if (r >= 0) printf("%s%.3f", r ? "," : "", now_ms() - w0);
  }
  printf("]}\n");
  for (i = 0; i < conc; i++) {
    curl_easy_cleanup(easy[i]);
    free(bufs[i].data);
  }
  curl_multi_cleanup(m);
  free(easy);
  free(bufs);
  return 0;
}

int main(int argc, char **argv) {
  const char *url, *body, *out = NULL;
  long n, warmup = 20, i, status = 0;
  int want_times = 0, a, parallel = 0, reps = 5;
  const char *smm = NULL;
  char errbuf[CURL_ERROR_SIZE];
  struct curl_slist *headers = NULL;
  double *times, w0, c0, wall, cpu;
  buffer b = {NULL, 0, 0};
  CURL *e;
  CURLU *uh = NULL;

  if (argc < 4) {
    fprintf(stderr, "usage: curl_loop URL N BODY [--warmup W] [--out FILE] [--times]\n");
    return 2;
  }
  url = argv[1];
  n = strtol(argv[2], NULL, 10);
  body = argv[3];
  for (a = 4; a < argc; a++) {
    if (strcmp(argv[a], "--warmup") == 0 && a + 1 < argc) warmup = strtol(argv[++a], NULL, 10);
    else if (strcmp(argv[a], "--out") == 0 && a + 1 < argc) out = argv[++a];
    else if (strcmp(argv[a], "--times") == 0) want_times = 1;
    else if (strcmp(argv[a], "--smm") == 0 && a + 1 < argc) smm = argv[++a];
    else if (strcmp(argv[a], "--parallel") == 0 && a + 1 < argc) parallel = atoi(argv[++a]);
    else if (strcmp(argv[a], "--reps") == 0 && a + 1 < argc) reps = atoi(argv[++a]);
    else {
      fprintf(stderr, "curl_loop: unknown argument %s\n", argv[a]);
      return 2;
    }
  }
  if (n < 1) n = 1;
  if (parallel > 0) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    a = parallel_runs(url, body, n, parallel, reps < 1 ? 1 : reps);
    curl_global_cleanup();
    return a;
  }
  times = calloc((size_t)n, sizeof(double));
  if (times == NULL) return 1;

  curl_global_init(CURL_GLOBAL_DEFAULT);
  e = curl_easy_init();
  if (e == NULL) return 1;
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)&b);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  g_body = body;
  if (smm && strcmp(smm, "all") == 0) smm = "gzip,agentlist,aeoff,proxy,noproxy,misc,multi,curlu";
#define HAS(name) (smm && strstr(smm, name) != NULL)
  if (HAS("enc")) curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  if (HAS("gzip")) curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "gzip");
  if (HAS("gzdef")) curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "gzip, deflate");
  if (HAS("ua")) curl_easy_setopt(e, CURLOPT_USERAGENT, "lua-smm/0.1.0");
  if (HAS("hdr")) {
    headers = curl_slist_append(headers, "Expect:");
    headers = curl_slist_append(headers, "Content-Type: application/x-www-form-urlencoded");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  }
  if (HAS("agentlist")) {
    headers = curl_slist_append(headers, "User-Agent: lua-smm/0.1.0");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  }
  if (HAS("aelist")) { /* with gzip: the Accept-Encoding line libcurl would print itself */
    headers = curl_slist_append(headers, "Accept-Encoding: gzip");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  }
  if (HAS("aeoff")) { /* with gzip: no Accept-Encoding line, decoding still on */
    headers = curl_slist_append(headers, "Accept-Encoding:");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  }
  if (HAS("curlu")) {
    uh = curl_url();
    curl_url_set(uh, CURLUPART_URL, url, CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME);
    curl_easy_setopt(e, CURLOPT_CURLU, uh);
  }
  if (HAS("noproxy")) curl_easy_setopt(e, CURLOPT_NOPROXY, "");
  if (HAS("proxy")) curl_easy_setopt(e, CURLOPT_PROXY, "");
  if (HAS("misc")) {
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
  }
  if (HAS("multi")) multi = curl_multi_init();
#undef HAS

  for (i = 0; i < warmup; i++)
    if (one(e, &b, &status) != 0) return 1;

  c0 = cpu_ms();
  w0 = now_ms();
  for (i = 0; i < n; i++) {
    double t = want_times ? now_ms() : 0;
    if (one(e, &b, &status) != 0) return 1;
    if (want_times) times[i] = now_ms() - t;
  }
  wall = now_ms() - w0;
  cpu = cpu_ms() - c0;

  if (out) {
    FILE *f = fopen(out, "wb");
    if (f == NULL || fwrite(b.data, 1, b.len, f) != b.len || fclose(f) != 0) {
      fprintf(stderr, "curl_loop: cannot write %s\n", out);
      return 1;
    }
  }
  printf("{\"n\":%ld,\"wall_ms\":%.3f,\"cpu_ms\":%.3f,\"bytes\":%zu,\"status\":%ld", n, wall, cpu,
         b.len, status);
  if (want_times) {
    printf(",\"times_ms\":[");
    for (i = 0; i < n; i++) printf("%s%.3f", i ? "," : "", times[i]);
    printf("]");
  }
  printf("}\n");
  curl_easy_cleanup(e);
  if (multi) curl_multi_cleanup(multi);
  curl_slist_free_all(headers);
  curl_url_cleanup(uh);
  curl_global_cleanup();
  free(times);
  free(b.data);
  return 0;
}
