/*
 * dns_answer - libFuzzer target for lib/dns answer validation and parsing
 * (dns_answer_parse): the bytes are a DNS answer packet; it is checked as
 * the answer to "host.example.test" of each record type, with the packet's
 * own ID so the fuzzer gets past the ID check.  Seeds: t/fuzz/dns_answer/.
 */
#include <stddef.h>
#include <stdint.h>

#include "dns/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum dns_type types[] = { DNS_T_A, DNS_T_AAAA, DNS_T_MX, DNS_T_PTR, DNS_T_TXT };
    uint16_t id;

    if (size < 2)
        return 0;
    id = (uint16_t)(data[0] << 8 | data[1]);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        struct dns_result r;

        if (dns_answer_parse(data, size, id, types[i], "host.example.test", &r) == 0)
            dns_result_clear(&r);
    }
    return 0;
}
