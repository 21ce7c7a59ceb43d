/* An intrusive doubly linked list, as in the Linux kernel and twemproxy:
 * the links live inside the element (struct list_node member), so adding
 * and removing never allocate, and an element can sit in several lists
 * through several members. A list is a head node linked to itself when
 * empty.
 *
 *     struct client { ...; struct list_node link; };
 *     struct list_node clients;   list_init(&clients);
 *     list_add_tail(&clients, &c->link);
 *     list_for_each_safe(n, next, &clients) {
 *         struct client *c = list_entry(n, struct client, link);
 *         ...
 *     }
 */
#ifndef LIST_H
#define LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list_node {
    struct list_node *prev;
    struct list_node *next;
};

/* Makes head an empty list, or node a detached element. */
static inline void list_init(struct list_node *head)
{
    head->prev = head;
    head->next = head;
}

static inline bool list_empty(const struct list_node *head)
{
    return head->next == head;
}

/* Whether node is in a list (nodes are detached by list_init and
 * list_remove). */
static inline bool list_linked(const struct list_node *node)
{
    return node->next != node;
}

static inline void list_insert_between(struct list_node *node, struct list_node *prev,
                                       struct list_node *next)
{
    node->prev = prev;
    node->next = next;
    prev->next = node;
    next->prev = node;
}

static inline void list_add_tail(struct list_node *head, struct list_node *node)
{
    list_insert_between(node, head->prev, head);
}

static inline void list_add_head(struct list_node *head, struct list_node *node)
{
    list_insert_between(node, head, head->next);
}

/* Unlinks node and leaves it detached (removing it again is harmless). */
static inline void list_remove(struct list_node *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    list_init(node);
}

/* The first node, or NULL when the list is empty. */
static inline struct list_node *list_first(const struct list_node *head)
{
    return list_empty(head) ? NULL : head->next;
}

#define list_entry(node, type, member) \
    ((type *)(void *)((char *)(node) - offsetof(type, member)))

/* Walks the list; the body may remove (and free) the current node. */
#define list_for_each_safe(pos, tmp, head) \
    for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head); (pos) = (tmp), (tmp) = (pos)->next)

#endif
