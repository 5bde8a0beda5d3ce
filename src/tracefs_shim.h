/* evfly's door to libtracefs: its header (1.6.4) does not compile as C++, so the calls tracer.cpp
 * makes go through this C file. Each function is the libtracefs call of the same name. */
#ifndef EVFLY_TRACEFS_SHIM_H
#define EVFLY_TRACEFS_SHIM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct tracefs_instance;
struct tep_handle;
struct tep_event;
struct tep_record;

typedef int (*evfly_trace_callback)(struct tep_event*, struct tep_record*, int, void*);

const char* evfly_tracefs_tracing_dir(void);
int evfly_tracefs_set_tracing_dir(const char* dir);
char** evfly_tracefs_instances(const char* regex);
void evfly_tracefs_list_free(char** list);
struct tracefs_instance* evfly_tracefs_instance_create(const char* name);
struct tracefs_instance* evfly_tracefs_instance_alloc(const char* name);
int evfly_tracefs_instance_destroy(struct tracefs_instance* instance);
void evfly_tracefs_instance_free(struct tracefs_instance* instance);
int evfly_tracefs_instance_file_write(struct tracefs_instance* instance, const char* file,
                                      const char* text);
int evfly_tracefs_instance_set_buffer_size(struct tracefs_instance* instance, size_t kb);
int evfly_tracefs_instance_set_affinity(struct tracefs_instance* instance, const char* cpus);
int evfly_tracefs_event_enable(struct tracefs_instance* instance, const char* system,
                               const char* event);
int evfly_tracefs_trace_on(struct tracefs_instance* instance);
int evfly_tracefs_trace_off(struct tracefs_instance* instance);
/* A tep handle that knows the ring buffer's page header and no event yet: unlike
 * tracefs_local_events, it does not read /proc/kallsyms and every format on the system (0.1 s
 * plain, over 10 s under AddressSanitizer), only what evfly parses. */
struct tep_handle* evfly_tracefs_event_formats(void);
/* Adds one event's format (events/<system>/<event>/format) to it: 0, or -1. */
int evfly_tracefs_parse_event_format(struct tep_handle* tep, const char* system, const char* event);
int evfly_tracefs_iterate_raw_events(struct tep_handle* tep, struct tracefs_instance* instance,
                                     evfly_trace_callback callback, void* context);

#ifdef __cplusplus
}
#endif

#endif
