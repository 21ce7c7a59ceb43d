/* Definitions shared by every Proximux module: status codes, attributes and
 * the version string. */
#ifndef PMX_H
#define PMX_H

#define PMX_VERSION "0.1.0"

/* Status codes returned by fallible functions. */
#define PMX_OK 0
#define PMX_ERR (-1)
#define PMX_AGAIN (-2)

#define PMX_WUR __attribute__((warn_unused_result))
#define PMX_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define PMX_UNUSED __attribute__((unused))

#define PMX_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define PMX_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PMX_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
