/*
 * ctl_out.h - how ember-ctl writes what it learned: terms as text or JSON, pids
 * from the operator's point of view, aligned tables, and errors.
 */
#ifndef EMBER_CTL_OUT_H
#define EMBER_CTL_OUT_H

#include "ctl.h"

/* A growing string. Running out of memory ends ember-ctl (exit 5). */
typedef struct ctl_buf {
    char *p;
    size_t len, cap;
} ctl_buf;

void ctl_buf_put(ctl_buf *b, const char *s, size_t n);
void ctl_buf_puts(ctl_buf *b, const char *s);
void ctl_buf_printf(ctl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *ctl_buf_str(ctl_buf *b);   /* NUL-terminated; "" when empty */
void ctl_buf_clear(ctl_buf *b);
void ctl_buf_free(ctl_buf *b);

/* Pids are written from the point of view of the node being asked, whose index
 * in our node table is home: its own pids as <0.I.S>, as it prints them; a pid
 * of another node as <NODE.I.S> with the node's name, since our numbering
 * means nothing to the operator. */
void ctl_pid_text(ctl_buf *b, em_pid_t pid, uint32_t home);
/* ember's text form (em_format's), with pids as above. */
void ctl_text(ctl_buf *b, em_term t, uint32_t home);
/* For tables: atoms and strings without quotes, nil as "-", the rest as text. */
void ctl_plain(ctl_buf *b, em_term t, uint32_t home);
/* JSON (docs/ember-ctl.md, "JSON"): maps are objects, arrays arrays, nil null,
 * atoms, pids and references strings, binaries base64 strings. */
void ctl_json(ctl_buf *b, em_term t, uint32_t home);
/* A JSON string of n bytes (invalid UTF-8 becomes U+FFFD). */
void ctl_json_str(ctl_buf *b, const char *s, size_t n);

/* A table printed in aligned columns, two spaces apart, under a header line
 * (head NULL: no header). */
typedef struct ctl_table {
    size_t ncols, rows, cap;
    const char *const *head;
    const bool *right;   /* right-align this column (numbers) */
    char **cells;
} ctl_table;

void ctl_table_init(ctl_table *t, size_t ncols, const char *const *head, const bool *right);
void ctl_table_row(ctl_table *t, const char *const *cells);   /* copies them */
void ctl_table_print(const ctl_table *t);                     /* to stdout */
void ctl_table_free(ctl_table *t);

#endif
