/*
 * text.c - the lexing shared by em_parse, em_match and em_format (see text_int.h):
 * decimal digits, number literals, escapes, and strtod in the "C" locale.
 */
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "term/text_int.h"

static int hex_val(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* The byte at s[i] as the lexers compare it: bytes of 0x80 and above stay positive,
 * so they are never taken for anything but themselves. */
static int at(const char *s, size_t i) { return (unsigned char)s[i]; }

/* strtod follows the program's locale, which may use ',' for the decimal point;
 * the text form always uses '.', so conversions go through the "C" locale. */
static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void) { c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0); }

double emi_text_strtod(const char *s, char **end)
{
    pthread_once(&c_locale_once, c_locale_init);
    return c_locale ? strtod_l(s, end, c_locale) : strtod(s, end);
}

size_t emi_text_dec(const char *s, uint64_t max, uint64_t *v)
{
    uint64_t x = 0;
    size_t i = 0;
    while (emi_text_is_digit(at(s, i))) {
        unsigned d = (unsigned)(at(s, i) - '0');
        if (x > (max - d) / 10)
            return 0;
        x = x * 10 + d;
        i++;
    }
    if (i)
        *v = x;
    return i;
}

static int number_bad(size_t *len, size_t off)
{
    *len = off;
    return -1;
}

int emi_text_number(const char *s, emi_number *num, size_t *len)
{
    int neg = s[0] == '-';
    size_t i = neg;
    uint64_t mag = 0;
    int overflow = 0;
    if (s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
        i += 2;
        if (hex_val(at(s, i)) < 0)
            return number_bad(len, i);
        while (hex_val(at(s, i)) >= 0) {
            overflow |= mag > (UINT64_MAX >> 4);
            mag = (mag << 4) | (uint64_t)hex_val(at(s, i));
            i++;
        }
    } else {
        if (!emi_text_is_digit(at(s, i)))
            return number_bad(len, i);
        while (emi_text_is_digit(at(s, i))) {
            unsigned d = (unsigned)(at(s, i) - '0');
            overflow |= mag > (UINT64_MAX - d) / 10;
            mag = mag * 10 + d;
            i++;
        }
        /* A float has a fraction, an exponent, or both; "1." and "1e" are the
         * integer 1 followed by something else. */
        size_t end = i;
        int frac = s[end] == '.' && emi_text_is_digit(at(s, end + 1));
        if (frac) {
            end++;
            while (emi_text_is_digit(at(s, end)))
                end++;
        }
        int expo = 0;
        if (s[end] == 'e' || s[end] == 'E') {
            size_t off = (s[end + 1] == '+' || s[end + 1] == '-') ? 2 : 1;
            if (emi_text_is_digit(at(s, end + off))) {
                expo = 1;
                end += off;
                while (emi_text_is_digit(at(s, end)))
                    end++;
            }
        }
        if (frac || expo) {
            /* strtod reads exactly these bytes: its decimal form is the same
             * digits, '.', digits and exponent, and the byte after them is not one
             * it could take, so no copy of the literal is needed. */
            double d = emi_text_strtod(s, NULL);
            if (isinf(d))
                return number_bad(len, 0);   /* out of range for a double */
            num->kind = EMI_NUMBER_FLOAT;
            num->f = d;
            *len = end;
            return 0;
        }
    }
    if (overflow || (neg && mag > (uint64_t)1 << 63))
        return number_bad(len, 0);
    if (neg) {
        num->kind = EMI_NUMBER_NEG;
        num->i = mag == (uint64_t)1 << 63 ? INT64_MIN : -(int64_t)mag;
    } else {
        num->kind = EMI_NUMBER_UINT;
        num->u = mag;
    }
    *len = i;
    return 0;
}

int emi_text_escape(const char *s, size_t *len)
{
    *len = 2;
    switch (s[1]) {
    case 'n': return '\n';
    case 't': return '\t';
    case 'r': return '\r';
    case '\\': return '\\';
    case '"': return '"';
    case '\'': return '\'';
    case 'x': {
        /* The low digit is read only after the high one, so a NUL stops it. */
        int h = hex_val(at(s, 2));
        int l = h < 0 ? -1 : hex_val(at(s, 3));
        if (l < 0)
            return -1;
        *len = 4;
        return h * 16 + l;
    }
    default: return -1;
    }
}
