/*
 * The native ceiling for our socket benchmark: DEALER -> ROUTER over tcp loopback with
 * libzmq's C API, in the same roles, counts and method as bench/socket_bench.ts (ours) and
 * bench/zeromqjs_bench.mjs (zeromq.js), so the three compare as ratios within one run.
 *
 * Built and run by bench/libzmq_anchor.ts (cc -O2 libzmq_bench.c -lzmq), or by hand:
 *   cc -O2 -o /tmp/libzmq_bench bench/libzmq_bench.c -lzmq
 *   /tmp/libzmq_bench throughput --size 64 [--count 1000000] [--warmup 20000] [--duration 3]
 *   /tmp/libzmq_bench throughput --size 1MiB
 *   /tmp/libzmq_bench rtt --size 64 [--count 20000] [--warmup 2000]
 * Standalone roles, to cross-test another implementation against libzmq (JSON lines, as
 * bench/zeromqjs_bench.mjs prints them):
 *   /tmp/libzmq_bench sink --bind EP --count N [--warmup W]
 *   /tmp/libzmq_bench echo --bind EP
 *   /tmp/libzmq_bench send --connect EP --count N [--size 64]
 *   /tmp/libzmq_bench rtt --connect EP        (round trips to an echo already bound at EP)
 *
 * Method (as ours):
 * - throughput: the parent is a DEALER doing one blocking zmq_send() per message, msg = one
 *   frame of `size` bytes (the same buffer every time; zmq_send copies it into a message, as a C
 *   user's code does); the child is a ROUTER bound on tcp://127.0.0.1:* in another process
 *   (fork) that receives with zmq_msg_recv() and times from the first to the last measured
 *   message (the clock is read at those two only, or at the end message):
 *   msg_per_s = (count - 1) / elapsed, mb_per_s = (count - 1) * size / elapsed / 1e6.
 *   The sender stops at --count or after --duration seconds, then sends an empty end message.
 * - rtt: the child ROUTER echoes every message; the parent DEALER sends one message and waits
 *   for its echo, --count times after warm-up; p50/p99 of each round trip in microseconds.
 * Prints one JSON line. Bounded by a watchdog (19 s); the child dies with its parent.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define MIB (1 << 20)
#define WATCHDOG_S 19

static const char *NAME = "libzmq (C)";

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "libzmq_bench: %s: %s\n", what, zmq_strerror(zmq_errno()));
  exit(1);
}

static long parse_size(const char *text) {
  char *end;
  long n = strtol(text, &end, 10);
  if (end == text || n < 0) return -1;
  if (*end == 'k' || *end == 'K') return n * 1024;
  if (*end == 'm' || *end == 'M') return n * MIB;
  return *end == '\0' ? n : -1;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Nearest-rank percentile, as the TypeScript benchmarks compute it. */
static double percentile(const double *sorted, long n, double p) {
  long rank = (long)((p / 100.0) * (double)n + 0.999999999);
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  return sorted[rank - 1];
}

static double round1(double x) { return (double)(long)(x * 10.0 + 0.5) / 10.0; }

/*
 * The child role: binds a ROUTER on `bind`, writes its endpoint to `ready_fd`, then sinks or
 * echoes. With `json`, the ready line and the result are JSON lines (the standalone roles, to
 * cross-test another implementation against libzmq).
 */
static void child(const char *bind, int ready_fd, int result_fd, int echo, long count,
                  long warmup, int json) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  void *ctx = zmq_ctx_new();
  void *sock = zmq_socket(ctx, ZMQ_ROUTER);
  int zero = 0;
  zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
  if (zmq_bind(sock, bind) != 0) die("bind");
  char endpoint[256];
  size_t len = sizeof endpoint;
  zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, endpoint, &len);
  if (json) dprintf(ready_fd, "{\"ready\":true,\"endpoint\":\"%s\"}\n", endpoint);
  else dprintf(ready_fd, "%s\n", endpoint);
  if (ready_fd != result_fd) close(ready_fd);

  zmq_msg_t id, payload;
  zmq_msg_init(&id);
  zmq_msg_init(&payload);
  if (echo) {
    while (1) {
      if (zmq_msg_recv(&id, sock, 0) < 0) die("recv");
      if (zmq_msg_recv(&payload, sock, 0) < 0) die("recv");
      if (zmq_msg_send(&id, sock, ZMQ_SNDMORE) < 0) die("send");
      if (zmq_msg_send(&payload, sock, 0) < 0) die("send");
    }
  }
  long seen = 0, measured = 0;
  double bytes = 0, t0 = 0, t1 = 0;
  size_t size = 0;
  while (1) {
    if (zmq_msg_recv(&id, sock, 0) < 0) die("recv");
    if (zmq_msg_recv(&payload, sock, 0) < 0) die("recv");
    size_t n = zmq_msg_size(&payload);
    if (n == 0) { /* end of a time-bounded run, sent right after the last message */
      t1 = now_s();
      break;
    }
    seen++;
    if (seen <= warmup) continue;
    if (measured == 0) t0 = now_s();
    else bytes += (double)n;
    size = n;
    measured++;
    if (measured >= count) {
      t1 = now_s();
      break;
    }
  }
  double elapsed = t1 - t0;
  int ok = measured >= 2 && elapsed > 0;
  if (json) {
    char msg_text[32] = "null", mb_text[32] = "null";
    if (ok) {
      snprintf(msg_text, sizeof msg_text, "%.1f", (double)(measured - 1) / elapsed);
      snprintf(mb_text, sizeof mb_text, "%.1f", bytes / elapsed / 1e6);
    }
    dprintf(result_fd,
            "{\"name\":\"%s\",\"test\":\"sink\",\"size\":%zu,\"count\":%ld,"
            "\"elapsed_s\":%.6f,\"msg_per_s\":%s,\"mb_per_s\":%s}\n",
            NAME, size, measured, elapsed, msg_text, mb_text);
  } else if (ok) {
    dprintf(result_fd, "%ld %zu %.9f %.1f %.1f\n", measured, size, elapsed,
            (double)(measured - 1) / elapsed, bytes / elapsed / 1e6);
  } else {
    dprintf(result_fd, "%ld %zu %.9f -1 -1\n", measured, size, elapsed);
  }
  close(result_fd);
  zmq_close(sock);
  zmq_ctx_term(ctx);
  _exit(0);
}

/* Forks the child role; returns its pid and fills `endpoint`. */
static pid_t spawn_child(int echo, long count, long warmup, char *endpoint, size_t cap,
                         int *result_read) {
  int ready[2], result[2];
  if (pipe(ready) != 0 || pipe(result) != 0) {
    perror("pipe");
    exit(1);
  }
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    exit(1);
  }
  if (pid == 0) {
    close(ready[0]);
    close(result[0]);
    child("tcp://127.0.0.1:*", ready[1], result[1], echo, count, warmup, 0);
  }
  close(ready[1]);
  close(result[1]);
  FILE *in = fdopen(ready[0], "r");
  if (!in || !fgets(endpoint, (int)cap, in)) {
    fprintf(stderr, "libzmq_bench: child not ready\n");
    exit(1);
  }
  fclose(in);
  endpoint[strcspn(endpoint, "\n")] = '\0';
  *result_read = result[0];
  return pid;
}

static void *dealer(void *ctx, const char *endpoint) {
  void *sock = zmq_socket(ctx, ZMQ_DEALER);
  int zero = 0;
  zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
  if (zmq_connect(sock, endpoint) != 0) die("connect");
  return sock;
}

static void throughput(long size, long count, long warmup, double duration) {
  char endpoint[256];
  int result_fd;
  pid_t pid = spawn_child(0, count, warmup, endpoint, sizeof endpoint, &result_fd);
  void *ctx = zmq_ctx_new();
  void *sock = dealer(ctx, endpoint);
  char *msg = malloc(size > 0 ? (size_t)size : 1);
  memset(msg, 0x61, (size_t)size);
  for (long i = 0; i < warmup; i++) {
    if (zmq_send(sock, msg, (size_t)size, 0) < 0) die("send");
  }
  double deadline = now_s() + duration;
  long sent = 0;
  while (sent < count) {
    if (zmq_send(sock, msg, (size_t)size, 0) < 0) die("send");
    sent++;
    if ((sent & 255) == 0 && now_s() > deadline) break;
  }
  if (sent < count && zmq_send(sock, "", 0, 0) < 0) die("send");
  FILE *in = fdopen(result_fd, "r");
  long measured = 0;
  size_t got = 0;
  double elapsed = 0, msgs = -1, mbs = -1;
  if (!in || fscanf(in, "%ld %zu %lf %lf %lf", &measured, &got, &elapsed, &msgs, &mbs) != 5) {
    fprintf(stderr, "libzmq_bench: no result from the sink\n");
    exit(1);
  }
  waitpid(pid, NULL, 0);
  char msg_text[32] = "null", mb_text[32] = "null";
  if (msgs >= 0) {
    snprintf(msg_text, sizeof msg_text, "%.1f", msgs);
    snprintf(mb_text, sizeof mb_text, "%.1f", mbs);
  }
  printf("{\"name\":\"%s\",\"test\":\"throughput\",\"size\":%ld,\"count\":%ld,"
         "\"msg_per_s\":%s,\"mb_per_s\":%s,\"elapsed_s\":%.6f}\n",
         NAME, size, measured, msg_text, mb_text, elapsed);
  zmq_close(sock);
  zmq_ctx_term(ctx);
  free(msg);
}

static void rtt(long size, long count, long warmup, double duration, const char *peer) {
  char endpoint[256];
  int result_fd;
  pid_t pid = 0;
  if (peer) snprintf(endpoint, sizeof endpoint, "%s", peer); /* another implementation's echo */
  else pid = spawn_child(1, 0, 0, endpoint, sizeof endpoint, &result_fd);
  void *ctx = zmq_ctx_new();
  void *sock = dealer(ctx, endpoint);
  char *msg = malloc(size > 0 ? (size_t)size : 1);
  memset(msg, 0x61, (size_t)size);
  zmq_msg_t reply;
  zmq_msg_init(&reply);
  for (long i = 0; i < warmup; i++) {
    if (zmq_send(sock, msg, (size_t)size, 0) < 0) die("send");
    if (zmq_msg_recv(&reply, sock, 0) < 0) die("recv");
  }
  double *samples = malloc(sizeof(double) * (size_t)count);
  double deadline = now_s() + duration;
  long n = 0;
  while (n < count) {
    double t0 = now_s();
    if (zmq_send(sock, msg, (size_t)size, 0) < 0) die("send");
    if (zmq_msg_recv(&reply, sock, 0) < 0) die("recv");
    samples[n++] = (now_s() - t0) * 1e6;
    if ((long)zmq_msg_size(&reply) != size) {
      fprintf(stderr, "libzmq_bench: echo returned %zu bytes\n", zmq_msg_size(&reply));
      exit(1);
    }
    if ((n & 255) == 0 && now_s() > deadline) break;
  }
  if (pid > 0) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
  }
  qsort(samples, (size_t)n, sizeof(double), cmp_double);
  printf("{\"name\":\"%s\",\"test\":\"rtt\",\"size\":%ld,\"count\":%ld,"
         "\"p50_us\":%.1f,\"p99_us\":%.1f}\n",
         NAME, size, n, round1(percentile(samples, n, 50)), round1(percentile(samples, n, 99)));
  zmq_close(sock);
  zmq_ctx_term(ctx);
  free(samples);
  free(msg);
}

/* The standalone sender: a DEALER connected to `endpoint` sends `count` messages, then "". */
static void send_role(const char *endpoint, long size, long count) {
  void *ctx = zmq_ctx_new();
  void *sock = dealer(ctx, endpoint);
  int linger = 5000;
  zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
  char *msg = malloc(size > 0 ? (size_t)size : 1);
  memset(msg, 0x61, (size_t)size);
  for (long i = 0; i < count; i++) {
    if (zmq_send(sock, msg, (size_t)size, 0) < 0) die("send");
  }
  if (zmq_send(sock, "", 0, 0) < 0) die("send");
  zmq_close(sock);
  zmq_ctx_term(ctx);
  free(msg);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: libzmq_bench throughput|rtt [--size N] [--count N] [--warmup N] "
                    "[--duration S]\n");
    return 2;
  }
  const char *role = argv[1];
  long size = 64, count = -1, warmup = -1;
  double duration = 3;
  const char *bind = NULL, *connect = NULL;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--size") == 0) size = parse_size(argv[i + 1]);
    else if (strcmp(argv[i], "--count") == 0) count = atol(argv[i + 1]);
    else if (strcmp(argv[i], "--warmup") == 0) warmup = atol(argv[i + 1]);
    else if (strcmp(argv[i], "--duration") == 0) duration = atof(argv[i + 1]);
    else if (strcmp(argv[i], "--bind") == 0) bind = argv[i + 1];
    else if (strcmp(argv[i], "--connect") == 0) connect = argv[i + 1];
    else {
      fprintf(stderr, "libzmq_bench: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (size < 0) {
    fprintf(stderr, "libzmq_bench: bad --size\n");
    return 2;
  }
  alarm(WATCHDOG_S); /* SIGALRM ends the parent; the child follows (PR_SET_PDEATHSIG) */
  if (strcmp(role, "throughput") == 0) {
    if (count < 0) count = size >= 65536 ? 2000 : 1000000;
    if (warmup < 0) warmup = size >= 65536 ? 200 : 20000;
    if (count < 2) count = 2;
    throughput(size, count, warmup, duration);
  } else if (strcmp(role, "rtt") == 0) {
    if (count < 0) count = 20000;
    if (warmup < 0) warmup = 2000;
    if (count < 1) count = 1;
    rtt(size, count, warmup, duration, connect);
  } else if ((strcmp(role, "sink") == 0 || strcmp(role, "echo") == 0) && bind) {
    alarm(0);
    child(bind, 1, 1, role[0] == 'e', count < 2 ? 2 : count, warmup < 0 ? 0 : warmup, 1);
  } else if (strcmp(role, "send") == 0 && connect && count >= 0) {
    send_role(connect, size, count);
  } else {
    fprintf(stderr, "libzmq_bench: unknown role %s: throughput, rtt, sink --bind EP, "
                    "echo --bind EP or send --connect EP --count N\n", role);
    return 2;
  }
  return 0;
}
