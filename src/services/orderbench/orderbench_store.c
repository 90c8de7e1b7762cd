/* orderbench_store.c - the OrderBench order map: one mutex, open addressing,
 * entries bump-allocated from chunks so that clearing 1,000,000 orders is a
 * memset and a few free()s.
 */
#include <stdlib.h>
#include <string.h>

#include "services/orderbench/orderbench_int.h"

#define CHUNK_BYTES   ((size_t)1 << 20) /* default chunk payload */
#define INITIAL_SLOTS 1024              /* power of two */

/* key bytes, then value bytes; 8-byte aligned inside its chunk */
struct orderbench_entry {
    uint32_t klen;
    uint32_t vlen;
    int32_t status;
    uint8_t bytes[];
};

struct orderbench_chunk {
    orderbench_chunk *next;
    size_t used; /* bytes of data handed out */
    size_t cap;  /* bytes of data */
    uint8_t data[];
};

/* FNV-1a, then murmur3's finalizer: sequential ids ("o-1", "o-2", ...) differ
 * in their last bytes only, and linear probing on the low bits wants those
 * differences spread over every bit. */
static uint64_t hash_key(const char *key, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)key[i];
        h *= 0x100000001b3u;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53u;
    h ^= h >> 33;
    return h;
}

static bool key_equal(const orderbench_entry *e, const char *key, size_t klen)
{
    return e->klen == klen && memcmp(e->bytes, key, klen) == 0;
}

int orderbench_store_init(orderbench_store *s, size_t max_orders, size_t max_bytes)
{
    memset(s, 0, sizeof *s);
    s->max_orders = max_orders ? max_orders : BENCH_STORE_MAX_ORDERS;
    s->max_bytes = max_bytes ? max_bytes : BENCH_STORE_MAX_BYTES;
    s->slots = calloc(INITIAL_SLOTS, sizeof *s->slots);
    if (!s->slots)
        return BENCH_ENOMEM;
    s->mask = INITIAL_SLOTS - 1;
    atomic_init(&s->next, 0);
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s->slots);
        s->slots = NULL;
        return BENCH_ENOMEM;
    }
    return 0;
}

static void free_chunks(orderbench_chunk *ch)
{
    while (ch) {
        orderbench_chunk *next = ch->next;
        free(ch);
        ch = next;
    }
}

void orderbench_store_dispose(orderbench_store *s)
{
    free_chunks(s->chunks);
    free(s->slots);
    pthread_mutex_destroy(&s->mu);
    s->chunks = NULL;
    s->slots = NULL;
}

/* Empties the map but keeps the slot array at its grown size (the next
 * million inserts need it again) and one standard chunk to bump into. */
static void clear_locked(orderbench_store *s)
{
    orderbench_chunk *keep = s->chunks;
    if (keep && keep->cap == CHUNK_BYTES) {
        free_chunks(keep->next);
        keep->next = NULL;
        keep->used = 0;
    } else {
        free_chunks(keep);
        keep = NULL;
    }
    s->chunks = keep;
    memset(s->slots, 0, (s->mask + 1) * sizeof *s->slots);
    s->count = 0;
    s->bytes = 0;
    s->clears++;
}

/* Doubles the slot array; 0 or BENCH_ENOMEM (the old array stays). */
static int grow_locked(orderbench_store *s)
{
    size_t n = (s->mask + 1) * 2;
    orderbench_slot *slots = calloc(n, sizeof *slots);
    if (!slots)
        return BENCH_ENOMEM;
    for (size_t i = 0; i <= s->mask; i++) {
        if (!s->slots[i].e)
            continue;
        size_t j = s->slots[i].hash & (n - 1);
        while (slots[j].e)
            j = (j + 1) & (n - 1);
        slots[j] = s->slots[i];
    }
    free(s->slots);
    s->slots = slots;
    s->mask = n - 1;
    return 0;
}

/* need bytes (a multiple of 8) from the head chunk, or a new one. */
static void *alloc_locked(orderbench_store *s, size_t need)
{
    orderbench_chunk *ch = s->chunks;
    if (!ch || ch->cap - ch->used < need) {
        size_t cap = need > CHUNK_BYTES ? need : CHUNK_BYTES;
        ch = malloc(sizeof *ch + cap);
        if (!ch)
            return NULL;
        ch->cap = cap;
        ch->used = 0;
        ch->next = s->chunks;
        s->chunks = ch;
    }
    void *p = ch->data + ch->used;
    ch->used += need;
    return p;
}

int orderbench_store_put(orderbench_store *s, const char *key, size_t klen, int32_t status,
                         const void *value, size_t len)
{
    if (klen > UINT32_MAX || len > UINT32_MAX)
        return BENCH_EINVAL;
    size_t need = (offsetof(orderbench_entry, bytes) + klen + len + 7) & ~(size_t)7;
    uint64_t h = hash_key(key, klen);
    int rv = 0;

    pthread_mutex_lock(&s->mu);
    if (s->count >= s->max_orders || (s->count && s->bytes + need > s->max_bytes))
        clear_locked(s);
    /* load factor <= 0.7: 1,000,000 orders fit in 2^21 slots (32 MiB) */
    if ((s->count + 1) * 10 > (s->mask + 1) * 7 && (rv = grow_locked(s)) != 0)
        goto out;
    orderbench_entry *e = alloc_locked(s, need);
    if (!e) {
        rv = BENCH_ENOMEM;
        goto out;
    }
    e->klen = (uint32_t)klen;
    e->vlen = (uint32_t)len;
    e->status = status;
    memcpy(e->bytes, key, klen);
    if (len)
        memcpy(e->bytes + klen, value, len);
    s->bytes += need;

    size_t i = h & s->mask;
    while (s->slots[i].e) {
        if (s->slots[i].hash == h && key_equal(s->slots[i].e, key, klen)) {
            /* the old entry's bytes stay in their chunk until the next clear */
            s->slots[i].e = e;
            goto out;
        }
        i = (i + 1) & s->mask;
    }
    s->slots[i].hash = h;
    s->slots[i].e = e;
    s->count++;
out:
    pthread_mutex_unlock(&s->mu);
    return rv;
}

bool orderbench_store_get(orderbench_store *s, const char *key, size_t klen, int32_t *status,
                          void *buf, size_t cap, size_t *len)
{
    uint64_t h = hash_key(key, klen);
    bool found = false;

    pthread_mutex_lock(&s->mu);
    for (size_t i = h & s->mask; s->slots[i].e; i = (i + 1) & s->mask) {
        const orderbench_entry *e = s->slots[i].e;
        if (s->slots[i].hash != h || !key_equal(e, key, klen))
            continue;
        found = true;
        *status = e->status;
        *len = e->vlen;
        if (buf && e->vlen <= cap && e->vlen)
            memcpy(buf, e->bytes + e->klen, e->vlen);
        break;
    }
    pthread_mutex_unlock(&s->mu);
    return found;
}

size_t orderbench_store_count(orderbench_store *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->count;
    pthread_mutex_unlock(&s->mu);
    return n;
}
