/*
 * list.h - intrusive doubly linked list (circular, with a head sentinel) and container_of.
 * Embed a struct list_node in the element; the list never allocates.
 */
#ifndef CV_LIST_H
#define CV_LIST_H

#include <stddef.h>
#include <stdint.h>

#define container_of(ptr, type, member) ((type *)(uintptr_t)((uintptr_t)(ptr) - offsetof(type, member)))

struct list_node {
    struct list_node *prev;
    struct list_node *next;
};

/* Makes |h| an empty list (or an unlinked node). */
static inline void list_init(struct list_node *h)
{
    h->prev = h;
    h->next = h;
}

static inline int list_empty(const struct list_node *h)
{
    return h->next == h;
}

/* Returns 1 when |n| is on some list (a node is unlinked after list_init or list_remove). */
static inline int list_linked(const struct list_node *n)
{
    return n->next != n;
}

static inline void list_insert_after(struct list_node *at, struct list_node *n)
{
    n->prev = at;
    n->next = at->next;
    at->next->prev = n;
    at->next = n;
}

/* Appends |n| at the tail of |h|. */
static inline void list_push_back(struct list_node *h, struct list_node *n)
{
    list_insert_after(h->prev, n);
}

static inline void list_push_front(struct list_node *h, struct list_node *n)
{
    list_insert_after(h, n);
}

/* Unlinks |n| and leaves it as an empty, unlinked node. Safe on an unlinked node. */
static inline void list_remove(struct list_node *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    list_init(n);
}

static inline struct list_node *list_first(const struct list_node *h)
{
    return list_empty(h) ? NULL : h->next;
}

#define list_for_each(pos, head) for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)

/* Safe against removal of |pos| inside the loop. */
#define list_for_each_safe(pos, tmp, head)                                                         \
    for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head); (pos) = (tmp), (tmp) = (pos)->next)

#endif
