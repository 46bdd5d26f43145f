/*
 * walltime: run a command and print its wall time in seconds (ns clock).
 *   walltime [-o FILE] COMMAND [ARG]...
 * The clock starts just before posix_spawn and stops when waitpid returns,
 * so it covers the command's exec, loading and exit, and nothing of the
 * caller's: timing a 10 ms command from a shell with $(date) around a
 * fork adds milliseconds of the shell's own to every side of a ratio.
 * The command's stdout and stderr go to FILE (default /dev/null). The
 * time goes to stdout; the exit status is the command's.
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

int
main(int argc, char **argv)
{
	posix_spawn_file_actions_t fa;
	struct timespec a, b;
	const char *out = "/dev/null";
	int i = 1, st, rc;
	pid_t pid;

	if (argc > 3 && strcmp(argv[1], "-o") == 0) {
		out = argv[2];
		i = 3;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: walltime [-o FILE] COMMAND [ARG]...\n");
		return 2;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, out,
	    O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	clock_gettime(CLOCK_MONOTONIC, &a);
	rc = posix_spawnp(&pid, argv[i], &fa, NULL, argv + i, environ);
	if (rc != 0) {
		fprintf(stderr, "walltime: %s: %s\n", argv[i], strerror(rc));
		return 127;
	}
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			perror("walltime: waitpid");
			return 127;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.6f\n", (double)(b.tv_sec - a.tv_sec) +
	    (double)(b.tv_nsec - a.tv_nsec) / 1e9);
	posix_spawn_file_actions_destroy(&fa);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
