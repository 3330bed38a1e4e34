/*
 * errors.c - names for the EM_E* codes.
 */
#include "ember.h"

const char *em_strerror(int err)
{
    switch (err) {
    case EM_OK: return "success";
    case EM_EINVAL: return "invalid argument";
    case EM_ENOMEM: return "out of memory";
    case EM_ESYSLIMIT: return "system limit reached";
    case EM_ETIMEDOUT: return "timed out";
    case EM_ENOPROC: return "no such process";
    case EM_EBADTERM: return "malformed term";
    case EM_ETOOBIG: return "term too large";
    case EM_ENOTPROC: return "not called from a process";
    case EM_EEXIST: return "already exists";
    case EM_ENOTFOUND: return "not found";
    case EM_ESTATE: return "runtime not in a state that allows this";
    default: return "unknown error";
    }
}
