/* SentencePiece BPE-style merging over the mapped vocabulary; see spm.h.
 *
 * Algorithm (llama.cpp's llm_tokenizer_spm): split the fragment into UTF-8 characters, queue
 * every adjacent pair whose concatenation is a token, then repeatedly merge the best pair
 * (highest score; on equal scores the leftmost), re-queueing the merged symbol's two new
 * neighbour pairs. Symbols that end up not being tokens become byte-fallback tokens.
 *
 * Shape legend: n = bytes in the fragment, S = symbols (<= n), Q = queued pairs (<= 3n). */
#include "spm.h"

#include <stdlib.h>
#include <string.h>

struct er_vocab {
    const uint8_t *base;
    const int64_t *offsets;
    const uint8_t *scores;     /* f32 array, read with memcpy: GGUF does not align it */
    int32_t n_vocab;
    uint32_t mask;             /* table size - 1 */
    int32_t *table;            /* token ids, -1 = empty */
    int32_t byte_ids[256];     /* fallback token per byte, -1 if the vocabulary has none */
};

static uint64_t token_len(const er_vocab *v, int32_t id) {
    uint64_t n;
    memcpy(&n, v->base + v->offsets[id] - 8, 8);
    return n;
}

static float token_score(const er_vocab *v, int32_t id) {
    float s;
    memcpy(&s, v->scores + 4 * (size_t)id, 4);
    return s;
}

static uint32_t hash_bytes(const uint8_t *s, size_t n) {
    uint64_t h = 1469598103934665603ull;   /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return (uint32_t)(h ^ (h >> 32));
}

/* The slot holding s, or the empty slot where it would go. */
static uint32_t probe(const er_vocab *v, const uint8_t *s, size_t n) {
    uint32_t i = hash_bytes(s, n) & v->mask;
    for (;; i = (i + 1) & v->mask) {
        int32_t id = v->table[i];
        if (id < 0) return i;
        if (token_len(v, id) == n && memcmp(v->base + v->offsets[id], s, n) == 0) return i;
    }
}

int32_t er_vocab_find(const er_vocab *v, const uint8_t *s, size_t n) {
    return v->table[probe(v, s, n)];
}

er_vocab *er_vocab_new(const uint8_t *base, const int64_t *offsets, const void *scores_f32,
                       int32_t n_vocab, int32_t *dup_a, int32_t *dup_b) {
    *dup_a = *dup_b = -1;
    er_vocab *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->base = base;
    v->offsets = offsets;
    v->scores = scores_f32;
    v->n_vocab = n_vocab;
    uint32_t size = 16;
    while (size < 2u * (uint32_t)n_vocab) size <<= 1;   /* load <= 1/2 keeps probes short */
    v->mask = size - 1;
    v->table = malloc(sizeof(int32_t) * size);
    if (!v->table) {
        free(v);
        return NULL;
    }
    memset(v->table, 0xff, sizeof(int32_t) * size);
    for (int32_t id = 0; id < n_vocab; id++) {
        uint64_t n = token_len(v, id);
        if (n == 0) continue;
        uint32_t slot = probe(v, base + offsets[id], n);
        if (v->table[slot] >= 0) {
            *dup_a = v->table[slot];
            *dup_b = id;
            er_vocab_free(v);
            return NULL;
        }
        v->table[slot] = id;
    }
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        const uint8_t name[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
        const uint8_t raw = (uint8_t)b;
        int32_t id = er_vocab_find(v, name, 6);
        v->byte_ids[b] = id >= 0 ? id : er_vocab_find(v, &raw, 1);
    }
    return v;
}

void er_vocab_free(er_vocab *v) {
    if (!v) return;
    free(v->table);
    free(v);
}

/* ---- the merge loop ---------------------------------------------------------------------- */

typedef struct {
    int32_t prev, next;   /* neighbours in the live chain, -1 at the ends */
    uint32_t start, n;    /* byte span in the fragment; n == 0 once merged into its left */
} symbol;

typedef struct {
    int32_t left, right;
    float score;
    uint32_t size;        /* bytes of left + right when queued: stale entries no longer match */
} pair;

typedef struct {
    pair *items;
    size_t len;
} heap;

/* a comes out of the queue before b: higher score, then smaller left index. */
static int pair_before(const pair *a, const pair *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(heap *h, pair p) {
    size_t i = h->len++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!pair_before(&p, &h->items[up])) break;
        h->items[i] = h->items[up];
        i = up;
    }
    h->items[i] = p;
}

static pair heap_pop(heap *h) {
    pair top = h->items[0], last = h->items[--h->len];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->len) break;
        if (c + 1 < h->len && pair_before(&h->items[c + 1], &h->items[c])) c++;
        if (!pair_before(&h->items[c], &last)) break;
        h->items[i] = h->items[c];
        i = c;
    }
    if (h->len) h->items[i] = last;
    return top;
}

static void try_pair(const er_vocab *v, const uint8_t *text, const symbol *sym, heap *h,
                     int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    uint32_t size = sym[left].n + sym[right].n;   /* adjacent symbols are contiguous bytes */
    int32_t id = er_vocab_find(v, text + sym[left].start, size);
    if (id < 0) return;
    heap_push(h, (pair){left, right, token_score(v, id), size});
}

/* Bytes in a UTF-8 sequence, from its lead byte (continuation or invalid bytes count as 1). */
static uint32_t utf8_len(uint8_t lead) {
    static const uint8_t by_high_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return by_high_nibble[lead >> 4];
}

int64_t er_spm_encode(const er_vocab *v, const uint8_t *text, size_t n, int32_t *out) {
    if (n == 0) return 0;
    symbol *sym = malloc(sizeof(symbol) * n);
    heap h = {malloc(sizeof(pair) * 3 * n), 0};  /* n-1 seeds + 2 per merge (< n merges) */
    int64_t count = -1;
    if (!sym || !h.items) goto done;

    int32_t ns = 0;
    for (size_t off = 0; off < n; ns++) {
        uint32_t len = utf8_len(text[off]);
        if (len > n - off) len = (uint32_t)(n - off);
        sym[ns] = (symbol){ns - 1, off + len == n ? -1 : ns + 1, (uint32_t)off, len};
        off += len;
    }
    for (int32_t i = 1; i < ns; i++) try_pair(v, text, sym, &h, i - 1, i);

    while (h.len) {
        pair p = heap_pop(&h);
        symbol *l = &sym[p.left], *r = &sym[p.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != p.size) continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = p.left;
        try_pair(v, text, sym, &h, l->prev, p.left);
        try_pair(v, text, sym, &h, p.left, l->next);
    }

    /* Every merged symbol is a token by construction, so a symbol that is not a token is a
     * single unmerged character: emit its bytes (llama.cpp's rev_merge path never applies). */
    count = 0;
    for (int32_t i = 0; i != -1; i = sym[i].next) {
        int32_t id = er_vocab_find(v, text + sym[i].start, sym[i].n);
        if (id >= 0) {
            out[count++] = id;
            continue;
        }
        for (uint32_t j = 0; j < sym[i].n; j++) {
            int32_t b = v->byte_ids[text[sym[i].start + j]];
            if (b < 0) {
                count = -2;
                goto done;
            }
            out[count++] = b;
        }
    }
done:
    free(sym);
    free(h.items);
    return count;
}
