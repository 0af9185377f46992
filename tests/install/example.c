/*
 * A program built against an installed libusersig, with its public header only: signs one
 * UserSig, verifies it, prints the token and the verdict. The key comes from the file named by
 * the first argument (as the usersig tool takes it), never from the command line.
 *   usage: example KEY_FILE SDKAPPID IDENTIFIER      exit status 0 only for a valid token
 */
#include <usersig.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_KEY 1024

/* Reads the secret (trailing newlines and spaces trimmed, as usersig does) into buf. */
static int read_key(const char *path, char *buf, size_t cap, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, cap, f);
    int bad = ferror(f) || n == cap; /* n == cap: longer than any secret libusersig takes */
    fclose(f);
    if (bad)
        return -1;
    while (n > 0 && strchr("\r\n \t", buf[n - 1]) != NULL)
        n--;
    *len = n;
    return n > 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    char secret[MAX_KEY + 1], token[USERSIG_TOKEN_BUF];
    size_t secret_len = 0, token_len = 0;
    struct usersig_key *key = NULL;
    struct usersig_signer *signer = NULL;
    enum usersig_rc rc;
    int status = 1;

    if (argc != 4) {
        fprintf(stderr, "usage: %s KEY_FILE SDKAPPID IDENTIFIER\n", argv[0]);
        return 2;
    }
    char *end;
    unsigned long sdkappid = strtoul(argv[2], &end, 10);
    if (*argv[2] == '\0' || *end != '\0' || sdkappid == 0 || sdkappid > 0xffffffffUL) {
        fprintf(stderr, "example: bad SDKAppID '%s'\n", argv[2]);
        return 2;
    }
    if (read_key(argv[1], secret, sizeof secret, &secret_len) != 0) {
        fprintf(stderr, "example: cannot read a key from %s\n", argv[1]);
        return 2;
    }
    rc = usersig_key_new_hmac(secret, secret_len, &key);
    memset(secret, 0, sizeof secret);
    if (rc != USERSIG_OK) {
        fprintf(stderr, "example: key: %s\n", usersig_rc_message(rc));
        goto out;
    }
    rc = usersig_signer_new(key, (uint32_t)sdkappid, USERSIG_DEFAULT_LEVEL, USERSIG_ID_PRINTABLE,
                            &signer);
    if (rc != USERSIG_OK) {
        fprintf(stderr, "example: signer: %s\n", usersig_rc_message(rc));
        goto out;
    }
    int64_t now = (int64_t)time(NULL);
    struct usersig_params params = {.identifier = argv[3],
                                    .identifier_len = strlen(argv[3]),
                                    .expire = 3600,
                                    .time = now,
                                    .room = {.kind = USERSIG_ROOM_NONE}};
    rc = usersig_sign(signer, &params, token, sizeof token, &token_len);
    if (rc != USERSIG_OK) {
        fprintf(stderr, "example: sign: %s: %s\n", usersig_rc_name(rc), usersig_rc_message(rc));
        goto out;
    }
    struct usersig_expect expect = {.identifier = argv[3],
                                    .identifier_len = strlen(argv[3]),
                                    .sdkappid = (uint32_t)sdkappid,
                                    .room_kind = USERSIG_ROOM_NONE};
    enum usersig_verdict v = usersig_verify(token, token_len, &expect, key, now, NULL);
    printf("libusersig %s\n", usersig_version());
    printf("token %s\n", token);
    printf("verdict %s %d\n", usersig_verdict_name(v), usersig_verdict_tencent_code(v));
    if (v != USERSIG_VALID) {
        fprintf(stderr, "example: %s\n", usersig_verdict_message(v));
        goto out;
    }
    status = fflush(stdout) == 0 ? 0 : 1;
out:
    usersig_signer_free(signer);
    usersig_key_free(key);
    return status;
}
