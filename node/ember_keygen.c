/*
 * ember_keygen.c - makes a node's key pair for keyring mode.
 *
 *   ember-keygen DIR [NODE]
 *
 * writes DIR/key (the Z85 secret key, mode 0400) and DIR/key.pub (the Z85 public
 * key), refusing to overwrite an existing key, and prints the line to add to the
 * `peers` file of every node that should accept this one:
 *
 *   <public key> NODE
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

static int write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        fprintf(stderr, "ember-keygen: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t len = strlen(text);
    bool ok = write(fd, text, len) == (ssize_t)len && write(fd, "\n", 1) == 1;
    close(fd);
    if (!ok) {
        fprintf(stderr, "ember-keygen: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fprintf(argc < 2 || argc > 3 ? stderr : stdout,
                "usage: ember-keygen DIR [NODE]\n"
                "Makes DIR/key (secret, mode 0400) and DIR/key.pub for keyring mode, and\n"
                "prints the line for other nodes' DIR/peers files.\n");
        return argc < 2 || argc > 3 ? 2 : 0;
    }
    const char *dir = argv[1];
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "ember-keygen: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char pub[41], sec[41];
    if (zmq_curve_keypair(pub, sec) != 0) {
        fprintf(stderr, "ember-keygen: libzmq was built without CURVE\n");
        return 1;
    }
    if (write_file(dir, "key", sec, 0400) != 0 || write_file(dir, "key.pub", pub, 0444) != 0)
        return 1;
    memset(sec, 0, sizeof sec);
    printf("%s %s\n", pub, argc == 3 ? argv[2] : "NODE@HOST");
    return 0;
}
