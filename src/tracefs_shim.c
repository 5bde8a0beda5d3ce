/* The only file that includes libtracefs's header (see tracefs_shim.h). */
#include "tracefs_shim.h"

#include <stdlib.h>
#include <tracefs/tracefs.h>

const char* evfly_tracefs_tracing_dir(void) { return tracefs_tracing_dir(); }
int evfly_tracefs_set_tracing_dir(const char* dir) {
    return tracefs_set_tracing_dir((char*)dir); /* 1.6.4 copies it, and does not write to it */
}
char** evfly_tracefs_instances(const char* regex) { return tracefs_instances(regex); }
void evfly_tracefs_list_free(char** list) { tracefs_list_free(list); }
struct tracefs_instance* evfly_tracefs_instance_create(const char* name) {
    return tracefs_instance_create(name);
}
struct tracefs_instance* evfly_tracefs_instance_alloc(const char* name) {
    return tracefs_instance_alloc(NULL, name);
}
int evfly_tracefs_instance_destroy(struct tracefs_instance* instance) {
    return tracefs_instance_destroy(instance);
}
void evfly_tracefs_instance_free(struct tracefs_instance* instance) {
    tracefs_instance_free(instance);
}
int evfly_tracefs_instance_file_write(struct tracefs_instance* instance, const char* file,
                                      const char* text) {
    return tracefs_instance_file_write(instance, file, text);
}
int evfly_tracefs_instance_set_buffer_size(struct tracefs_instance* instance, size_t kb) {
    return tracefs_instance_set_buffer_size(instance, kb, -1);
}
int evfly_tracefs_instance_set_affinity(struct tracefs_instance* instance, const char* cpus) {
    return tracefs_instance_set_affinity(instance, cpus);
}
int evfly_tracefs_event_enable(struct tracefs_instance* instance, const char* system,
                               const char* event) {
    return tracefs_event_enable(instance, system, event);
}
int evfly_tracefs_trace_on(struct tracefs_instance* instance) { return tracefs_trace_on(instance); }
int evfly_tracefs_trace_off(struct tracefs_instance* instance) {
    return tracefs_trace_off(instance);
}
struct tep_handle* evfly_tracefs_event_formats(void) {
    struct tep_handle* tep = tep_alloc();
    if (tep == NULL) return NULL;
    int size = 0;
    char* header = tracefs_instance_file_read(NULL, "events/header_page", &size);
    if (header == NULL || size <= 0 ||
        tep_parse_header_page(tep, header, (unsigned long)size, sizeof(long)) != 0) {
        free(header);
        tep_free(tep);
        return NULL;
    }
    free(header);
    return tep;
}
int evfly_tracefs_parse_event_format(struct tep_handle* tep, const char* system,
                                     const char* event) {
    int size = 0;
    char* format = tracefs_event_file_read(NULL, system, event, "format", &size);
    if (format == NULL || size <= 0) {
        free(format);
        return -1;
    }
    const int ret =
        tep_parse_event(tep, format, (unsigned long)size, system) == TEP_ERRNO__SUCCESS ? 0 : -1;
    free(format);
    return ret;
}
int evfly_tracefs_iterate_raw_events(struct tep_handle* tep, struct tracefs_instance* instance,
                                     evfly_trace_callback callback, void* context) {
    return tracefs_iterate_raw_events(tep, instance, NULL, 0, callback, context);
}
