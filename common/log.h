/*
 * The one logging API. Messages go to stderr prefixed with the program name.
 * log_warn appends strerror(errno); fatal/fatalx exit(1) and are for the
 * top level only.
 */
#ifndef PEP_LOG_H
#define PEP_LOG_H

#define PEP_FMT(a, b) __attribute__((format(printf, a, b)))

void log_init(const char *progname, int verbose, int quiet);
const char *log_progname(void);
int log_verbose(void);
void log_warn(const char *fmt, ...) PEP_FMT(1, 2);
void log_warnx(const char *fmt, ...) PEP_FMT(1, 2);
void log_info(const char *fmt, ...) PEP_FMT(1, 2);
void log_debug(const char *fmt, ...) PEP_FMT(1, 2);
_Noreturn void fatal(const char *fmt, ...) PEP_FMT(1, 2);
_Noreturn void fatalx(const char *fmt, ...) PEP_FMT(1, 2);

#endif
