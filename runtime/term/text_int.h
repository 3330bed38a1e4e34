/*
 * text_int.h - the lexing that the term text readers (em_parse in parse.c,
 * em_match in match.c) and the writer (em_format in print.c) share, so that a
 * number, an escape or a float reads the same way wherever the text form is read.
 *
 * The scanners read NUL-terminated text and never look past the NUL: em_parse's
 * text and em_match's pattern are both C strings, so the NUL ends every token.
 */
#ifndef EMBER_TERM_TEXT_INT_H
#define EMBER_TERM_TEXT_INT_H

#include <stddef.h>
#include <stdint.h>

/* What a number literal holds: a negative integer, a non-negative one, or a float
 * (which has a fraction, an exponent or both). */
typedef enum emi_number_kind {
    EMI_NUMBER_NEG,
    EMI_NUMBER_UINT,
    EMI_NUMBER_FLOAT,
} emi_number_kind;

typedef struct emi_number {
    emi_number_kind kind;
    union {
        int64_t i;   /* EMI_NUMBER_NEG, in [INT64_MIN, 0] */
        uint64_t u;  /* EMI_NUMBER_UINT */
        double f;    /* EMI_NUMBER_FLOAT, finite */
    };
} emi_number;

/* The character classes are inline: the lexers test them once a byte. */

/* Whether ch is a decimal digit; returns 1 or 0. */
static inline int emi_text_is_digit(int ch) { return ch >= '0' && ch <= '9'; }

/* Whether ch may follow the first letter of a bare atom; returns 1 or 0. */
static inline int emi_text_is_atom_char(int ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || emi_text_is_digit(ch) ||
           ch == '_' || ch == '@';
}

/* Reads s as strtod would in the "C" locale, whatever the program's locale; returns
 * the double and, when end is not NULL, sets *end past the characters read. */
double emi_text_strtod(const char *s, char **end);

/* Scans decimal digits at s into *v; returns how many it took, or 0 when s does
 * not start with a digit or the value is above max. */
size_t emi_text_dec(const char *s, uint64_t max, uint64_t *v);

/* Scans the number literal at s (-?digits, -?0x hex digits, or a decimal float)
 * into *num; returns 0 with *len the bytes it takes, or -1 with *len the offset of
 * the byte that makes it malformed or out of range (0 when the whole literal is). */
int emi_text_number(const char *s, emi_number *num, size_t *len);

/* Decodes the escape whose backslash is at s (\n \t \r \\ \" \' \xHH); returns the
 * byte with *len the bytes it takes, backslash included, or -1 when malformed. */
int emi_text_escape(const char *s, size_t *len);

#endif
