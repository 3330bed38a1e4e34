/*
 * epmd_extra.c - ember's convention for the Extra field of a registration
 * (docs/epmd.md, "The Extra field"): "ember1 <transport> curve=<fingerprint>"
 * with optional further key=value tokens, single spaces between tokens.
 *
 * The daemon never looks inside Extra; only ember peers do, with these two
 * functions, so the text stays one definition in one place.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "epmd_client.h"

static bool transport_ok(const char *s, size_t len)
{
    if (len == 0 || len > EM_EPMD_MAX_TRANSPORT)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
            return false;
    return true;
}

static bool hex_ok(const char *s, size_t len)
{
    if (len != EM_EPMD_FINGERPRINT_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
              (s[i] >= 'A' && s[i] <= 'F')))
            return false;
    return true;
}

static void lower_copy(char *dst, const char *src, size_t len)
{
    for (size_t i = 0; i < len; i++)
        dst[i] = (src[i] >= 'A' && src[i] <= 'F') ? (char)(src[i] - 'A' + 'a') : src[i];
    dst[len] = '\0';
}

int em_epmd_extra_build(char *buf, size_t cap, const char *transport, const char *curve_fingerprint)
{
    if (!buf || !transport || !curve_fingerprint ||
        !transport_ok(transport, strnlen(transport, EM_EPMD_MAX_TRANSPORT + 1)) ||
        !hex_ok(curve_fingerprint, strnlen(curve_fingerprint, EM_EPMD_FINGERPRINT_LEN + 1)))
        return -EINVAL;
    char fp[EM_EPMD_FINGERPRINT_LEN + 1];
    lower_copy(fp, curve_fingerprint, EM_EPMD_FINGERPRINT_LEN);
    int n = snprintf(buf, cap, "%s %s curve=%s", EM_EPMD_EXTRA_TAG, transport, fp);
    if (n < 0 || (size_t)n >= cap)
        return -ENOSPC;
    return n;
}

int em_epmd_extra_parse(const void *extra, size_t len, em_epmd_extra *out)
{
    const char *s = extra;
    const size_t taglen = sizeof EM_EPMD_EXTRA_TAG - 1;
    if (!out || (!s && len))
        return -EINVAL;
    memset(out, 0, sizeof *out);
    if (len < taglen || memcmp(s, EM_EPMD_EXTRA_TAG, taglen) != 0 ||
        (len > taglen && s[taglen] != ' '))
        return -ENOENT;
    if (len > EM_EPMD_MAX_EXTRA)
        return -EPROTO;
    /* Walk the tokens after the tag: the first is the transport, the rest are
     * key=value pairs. Only printable ASCII without spaces makes up a token. */
    size_t i = taglen, index = 0;
    bool have_curve = false;
    while (i < len) {
        if (s[i] != ' ')
            return -EPROTO;
        size_t start = ++i;
        while (i < len && s[i] > ' ' && s[i] < 0x7f)
            i++;
        if (i < len && s[i] != ' ')
            return -EPROTO;
        const char *tok = s + start;
        size_t tlen = i - start;
        if (index++ == 0) {
            if (!transport_ok(tok, tlen))
                return -EPROTO;
            memcpy(out->transport, tok, tlen);
            out->transport[tlen] = '\0';
            continue;
        }
        const char *eq = memchr(tok, '=', tlen);
        if (!eq || eq == tok)
            return -EPROTO;
        if ((size_t)(eq - tok) == 5 && memcmp(tok, "curve", 5) == 0) {
            size_t vlen = tlen - 6;
            if (!hex_ok(eq + 1, vlen))
                return -EPROTO;
            lower_copy(out->curve, eq + 1, vlen);
            have_curve = true;
        }
    }
    return out->transport[0] && have_curve ? 0 : -EPROTO;
}
