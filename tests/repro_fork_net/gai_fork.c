#define _GNU_SOURCE
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <signal.h>
#include <time.h>
static void *slow(void *a) { (void)a; for (;;) { struct addrinfo *r = 0; struct addrinfo h = {0}; h.ai_socktype = SOCK_STREAM; int rc = getaddrinfo("slow.test", "80", &h, &r); if (!rc) freeaddrinfo(r); } return 0; }
static void *fast(void *a) { (void)a; struct addrinfo *r = 0; struct addrinfo h = {0}; h.ai_socktype = SOCK_STREAM; int rc = getaddrinfo("fast.test", "80", &h, &r); if (rc) { fprintf(stderr, "child gai: %s\n", gai_strerror(rc)); _exit(2);} _exit(0); }
int main(int argc, char **argv) {
  int forks = argc > 1 ? atoi(argv[1]) : 50;
  int slowers = argc > 2 ? atoi(argv[2]) : 4;
  for (int i = 0; i < slowers; i++) { pthread_t t; pthread_create(&t, 0, slow, 0); }
  sleep(1);
  int ok = 0, hung = 0, failed = 0;
  for (int i = 0; i < forks; i++) {
    pid_t p = fork();
    if (p == 0) { alarm(atoi(getenv("ALARM")?getenv("ALARM"):"10")); pthread_t t; pthread_create(&t, 0, fast, 0); pause(); _exit(3); }
    int st; waitpid(p, &st, 0);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) ok++; else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) hung++; else failed++;
  }
  printf("forks %d ok %d hung %d failed %d\n", forks, ok, hung, failed);
  return 0;
}
