/*
 * A test helper for tests/e2e/checkpoint.test.js: what someone who stole the master key (and a
 * superuser connection to the database) can do to the audit log. With the real keyring code it
 * recomputes every event's MAC from the first, as the events now read (after the test edited
 * one), and re-signs every stored checkpoint over the recomputed chain with the checkpoint key
 * (its private half is sealed under that same master key). It changes nothing itself: it prints
 *   event SEQ MAC_HEX                   for each event whose stored MAC differs
 *   checkpoint SEQ MAC_HEX SIG_HEX      for each stored checkpoint, re-signed
 * and the test writes them with psql, triggers off. The database and master key come from the
 * settings, as for `usersigd audit verify` (USERSIGD_DATABASE_URL, USERSIGD_MASTER_KEY_FILE).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "boot.h"
#include "hex.h"
#include "keyring.h"
#include "store.h"

#define PAGE 500

int main(void)
{
    struct boot d = {0};
    struct store_audit_filter f = {.limit = PAGE};
    struct audit_event *page = NULL;
    struct store_ckpt *cps = NULL;
    struct store_ckpt_key key;
    uint8_t prev[AUDIT_MAC_LEN] = {0};
    size_t n = 0, n_cps = 0, next_cp = 0;
    int ret = 1;

    if (boot_open_all(&d, NULL) != 0)
        goto done;
    const uint8_t *ak = keyring_audit_key(d.kr);
    if (store_ckpt_list(d.st, 0, STORE_CKPT_PAGE_MAX, &cps, &n_cps) != STORE_OK ||
        (n_cps > 0 && store_ckpt_key_get(d.st, false, &key) != STORE_OK)) {
        fprintf(stderr, "audit_remac: cannot read the checkpoints\n");
        goto done;
    }
    for (;;) {
        if (store_audit_query(d.st, &f, &page, &n) != STORE_OK) {
            fprintf(stderr, "audit_remac: cannot read the audit log\n");
            goto done;
        }
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            uint8_t mac[AUDIT_MAC_LEN];
            char hex[2 * AUDIT_MAC_LEN + 1];
            if (audit_mac(ak, prev, &page[i], mac) != AUDIT_OK) {
                fprintf(stderr, "audit_remac: event %lld cannot be MACed\n",
                        (long long)page[i].seq);
                goto done;
            }
            hex_encode(mac, sizeof mac, hex);
            if (memcmp(mac, page[i].mac, AUDIT_MAC_LEN) != 0)
                printf("event %lld %s\n", (long long)page[i].seq, hex);
            while (next_cp < n_cps && cps[next_cp].seq < page[i].seq)
                next_cp++;
            if (next_cp < n_cps && cps[next_cp].seq == page[i].seq) {
                struct store_ckpt *c = &cps[next_cp];
                char text[AUDIT_CKPT_MSG_BUF], sig_hex[2 * KEYRING_CKPT_SIG_BYTES + 1];
                size_t len = audit_checkpoint_message(c->seq, mac, c->at_us, text);
                if (len == 0 ||
                    keyring_ckpt_sign(d.kr, key.public_key, key.sealed, key.sealed_len,
                                      (const uint8_t *)text, len, c->signature) != KEYRING_OK) {
                    fprintf(stderr, "audit_remac: cannot re-sign checkpoint %lld\n",
                            (long long)c->seq);
                    goto done;
                }
                hex_encode(c->signature, sizeof c->signature, sig_hex);
                printf("checkpoint %lld %s %s\n", (long long)c->seq, hex, sig_hex);
            }
            memcpy(prev, mac, AUDIT_MAC_LEN);
        }
        f.after_seq = page[n - 1].seq;
        free(page);
        page = NULL;
    }
    ret = 0;
done:
    free(page);
    free(cps);
    boot_close(&d);
    return ret;
}
