// files.c — uploaded files on disk and their index (see files.h).
//
// sha256 comes from nettle (nettle-dev): Debian's libarchive13, which the
// dataset reader links, already depends on libnettle8, so hashing adds no
// new runtime library; its API is three plain C calls with no global state
// (OpenSSL's EVP would bring libcrypto and its provider machinery for one hash).
#include "server/files.h"
#include <dirent.h>           // opendir, readdir
#include <errno.h>            // errno, EEXIST, EINTR
#include <fcntl.h>            // open, O_*
#include <limits.h>           // PATH_MAX
#include <nettle/sha2.h>      // sha256_ctx, sha256_init/update/digest
#include <pthread.h>          // pthread_mutex_t
#include <stdio.h>            // snprintf, rename
#include <stdlib.h>           // malloc, free, realpath, qsort
#include <string.h>           // strcmp, strlen, strerror
#include <sys/random.h>       // getrandom
#include <sys/stat.h>         // mkdir, stat
#include <time.h>             // time
#include <unistd.h>           // write, fsync, close, unlink
#include "engine/core/util.h"      // eng_errorf, eng_write_file_atomic
#include "server/log.h"       // log_warn, log_info

#define ID_PREFIX "file-"
#define ID_HEX 24             // random hex digits after the prefix (96 bits)
#define ID_LEN (sizeof ID_PREFIX - 1 + ID_HEX)

typedef struct {
    char id[ID_LEN + 1];
    long long created_at;     // unix seconds
    json_t *obj;              // the file object (owned)
} entry;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;   // guards everything below
static char *dir;             // absolute <data_dir>/files, or NULL before init
static long long max_bytes;
static entry *entries;        // sorted by (created_at, id)
static int n_entries, cap_entries;

struct srv_file_upload {
    char id[ID_LEN + 1];
    char *tmp;                // temp path (owned), NULL once renamed or removed
    int fd;                   // open temp file, -1 when closed
    long long bytes;
    struct sha256_ctx sha;
};

// ---------------------------------------------------------------- names
int srv_files_valid_id(const char *id) {
    if (!id || strncmp(id, ID_PREFIX, sizeof ID_PREFIX - 1) != 0 || strlen(id) != ID_LEN) return 0;
    for (const char *c = id + sizeof ID_PREFIX - 1; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'))) return 0;
    return 1;
}

int srv_files_valid_filename(const char *name) {
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 255 || strstr(name, "..")) return 0;
    if (strcmp(name, ".") == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

// <dir>/<id><suffix> into buf (the id was validated: no '/' can appear).
static void path_of(char *buf, size_t n, const char *id, const char *suffix) {
    snprintf(buf, n, "%s/%s%s", dir, id, suffix);
}

static int fsync_dir(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

// ---------------------------------------------------------------- the index (under lock)
static int entry_cmp(const void *a, const void *b) {
    const entry *x = a, *y = b;
    if (x->created_at != y->created_at) return x->created_at < y->created_at ? -1 : 1;
    return strcmp(x->id, y->id);
}

static int find(const char *id) {
    for (int i = 0; i < n_entries; i++)
        if (strcmp(entries[i].id, id) == 0) return i;
    return -1;
}

// Adds obj (stolen) in order. 0, or -1 when out of memory (obj released).
static int index_add(const char *id, long long created_at, json_t *obj) {
    if (n_entries == cap_entries) {
        int cap = cap_entries ? cap_entries * 2 : 64;
        entry *e = realloc(entries, (size_t)cap * sizeof *e);
        if (!e) { json_decref(obj); return -1; }
        entries = e;
        cap_entries = cap;
    }
    entry e = {.created_at = created_at, .obj = obj};
    snprintf(e.id, sizeof e.id, "%s", id);
    int at = n_entries;
    while (at > 0 && entry_cmp(&entries[at - 1], &e) > 0) at--;
    memmove(&entries[at + 1], &entries[at], (size_t)(n_entries - at) * sizeof *entries);
    entries[at] = e;
    n_entries++;
    return 0;
}

// ---------------------------------------------------------------- start-up
// Loads <dir>/<name> (an "<id>.json") into the index if it describes a
// complete file; a broken one is logged and skipped (its bytes stay).
static void load_meta(const char *name) {
    char id[ID_LEN + 1], path[PATH_MAX], bytes_path[PATH_MAX];
    snprintf(id, sizeof id, "%.*s", (int)ID_LEN, name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    path_of(bytes_path, sizeof bytes_path, id, "");
    json_error_t je;
    json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    json_t *b = json_object_get(o, "bytes"), *t = json_object_get(o, "created_at");
    struct stat st;
    if (!o || !json_is_object(o) || !json_is_string(json_object_get(o, "id")) ||
        strcmp(json_string_value(json_object_get(o, "id")), id) != 0 || !json_is_integer(b) || !json_is_integer(t)) {
        log_warn("files: %s is not a file object; skipped", path);
        json_decref(o);
        return;
    }
    if (stat(bytes_path, &st) != 0 || (long long)st.st_size != json_integer_value(b)) {
        log_warn("files: %s: the stored bytes are missing or of the wrong size; skipped", path);
        json_decref(o);
        return;
    }
    if (index_add(id, json_integer_value(t), o) != 0) log_warn("files: out of memory loading %s", path);
}

int srv_files_init(const char *data_dir, long long max_file_bytes, char **err) {
    srv_files_free();
    char buf[PATH_MAX];
    if (mkdir(data_dir, 0755) != 0 && errno != EEXIST) return eng_errorf(err, "data_dir %s: %s", data_dir, strerror(errno));
    snprintf(buf, sizeof buf, "%s/files", data_dir);
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return eng_errorf(err, "%s: %s", buf, strerror(errno));
    char *abs = realpath(buf, NULL);
    if (!abs) return eng_errorf(err, "%s: %s", buf, strerror(errno));
    if (access(abs, W_OK) != 0) { int e = errno; free(abs); return eng_errorf(err, "%s: not writable: %s", buf, strerror(e)); }
    DIR *d = opendir(abs);
    if (!d) { int e = errno; free(abs); return eng_errorf(err, "%s: %s", buf, strerror(e)); }
    pthread_mutex_lock(&lock);
    dir = abs;
    max_bytes = max_file_bytes;
    // first pass: metadata; unfinished uploads go
    for (struct dirent *de; (de = readdir(d));) {
        const char *nm = de->d_name;
        char id[ID_LEN + 1];
        snprintf(id, sizeof id, "%.*s", (int)ID_LEN, nm);
        if (strncmp(nm, ".tmp-", 5) == 0) {
            snprintf(buf, sizeof buf, "%s/%s", dir, nm);
            unlink(buf);
        } else if (strlen(nm) == ID_LEN + 5 && strcmp(nm + ID_LEN, ".json") == 0 && srv_files_valid_id(id)) {
            load_meta(nm);
        }
    }
    // second pass: bytes without metadata (a crash between the two renames)
    rewinddir(d);
    for (struct dirent *de; (de = readdir(d));) {
        if (srv_files_valid_id(de->d_name) && find(de->d_name) < 0) {
            snprintf(buf, sizeof buf, "%s/%s.json", dir, de->d_name);
            if (access(buf, F_OK) == 0) continue;   // metadata there but broken: keep both for a human
            snprintf(buf, sizeof buf, "%s/%s", dir, de->d_name);
            log_info("files: removing %s (no metadata: an upload interrupted before it finished)", buf);
            unlink(buf);
        }
    }
    closedir(d);
    pthread_mutex_unlock(&lock);
    return 0;
}

void srv_files_free(void) {
    pthread_mutex_lock(&lock);
    for (int i = 0; i < n_entries; i++) json_decref(entries[i].obj);
    free(entries);
    entries = NULL;
    n_entries = cap_entries = 0;
    free(dir);
    dir = NULL;
    pthread_mutex_unlock(&lock);
}

long long srv_files_max_bytes(void) { return max_bytes; }

// ---------------------------------------------------------------- lookups
char *srv_files_path(const char *id) {
    if (!srv_files_valid_id(id)) return NULL;
    char buf[PATH_MAX], *p = NULL;
    pthread_mutex_lock(&lock);
    if (dir && find(id) >= 0) {
        path_of(buf, sizeof buf, id, "");
        p = strdup(buf);
    }
    pthread_mutex_unlock(&lock);
    return p;
}

json_t *srv_files_object(const char *id) {
    if (!srv_files_valid_id(id)) return NULL;
    json_t *o = NULL;
    pthread_mutex_lock(&lock);
    int i = dir ? find(id) : -1;
    if (i >= 0) o = json_incref(entries[i].obj);
    pthread_mutex_unlock(&lock);
    return o;
}

json_t *srv_files_list(const char *after, int limit, int desc, int *has_more) {
    json_t *a = json_array();
    *has_more = 0;
    if (!a) return NULL;
    pthread_mutex_lock(&lock);
    int start = desc ? n_entries - 1 : 0;
    if (after) {
        int i = srv_files_valid_id(after) ? find(after) : -1;
        if (i < 0) { pthread_mutex_unlock(&lock); json_decref(a); return NULL; }
        start = desc ? i - 1 : i + 1;
    }
    int step = desc ? -1 : 1;
    for (int i = start; i >= 0 && i < n_entries; i += step) {
        if ((int)json_array_size(a) == limit) { *has_more = 1; break; }
        json_array_append(a, entries[i].obj);
    }
    pthread_mutex_unlock(&lock);
    return a;
}

int srv_files_delete(const char *id) {
    if (!srv_files_valid_id(id)) return -1;
    char meta[PATH_MAX], bytes[PATH_MAX];
    pthread_mutex_lock(&lock);
    int i = dir ? find(id) : -1;
    if (i < 0) { pthread_mutex_unlock(&lock); return -1; }
    path_of(meta, sizeof meta, id, ".json");
    path_of(bytes, sizeof bytes, id, "");
    unlink(meta);    // uncommits the file
    unlink(bytes);   // a job that has it open keeps reading it (POSIX)
    fsync_dir(dir);
    json_decref(entries[i].obj);
    memmove(&entries[i], &entries[i + 1], (size_t)(n_entries - i - 1) * sizeof *entries);
    n_entries--;
    pthread_mutex_unlock(&lock);
    return 0;
}

// ---------------------------------------------------------------- uploads
srv_file_upload *srv_files_upload_begin(char **err) {
    unsigned char rnd[ID_HEX / 2];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) { eng_errorf(err, "getrandom: %s", strerror(errno)); return NULL; }
    srv_file_upload *u = calloc(1, sizeof *u);
    if (!u) { eng_errorf(err, "out of memory"); return NULL; }
    char *p = u->id + snprintf(u->id, sizeof u->id, "%s", ID_PREFIX);
    for (size_t i = 0; i < sizeof rnd; i++) p += sprintf(p, "%02x", rnd[i]);
    char buf[PATH_MAX];
    pthread_mutex_lock(&lock);
    int ready = dir != NULL;
    if (ready) snprintf(buf, sizeof buf, "%s/.tmp-%s", dir, u->id);
    pthread_mutex_unlock(&lock);
    if (!ready) { free(u); eng_errorf(err, "file storage is not initialised"); return NULL; }
    u->fd = open(buf, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (u->fd < 0 || !(u->tmp = strdup(buf))) {
        eng_errorf(err, "cannot create %s: %s", buf, strerror(errno));
        if (u->fd >= 0) { close(u->fd); unlink(buf); }
        free(u);
        return NULL;
    }
    sha256_init(&u->sha);
    return u;
}

// Closes and removes the temp file (once).
static void drop_tmp(srv_file_upload *u) {
    if (u->fd >= 0) close(u->fd);
    u->fd = -1;
    if (u->tmp) unlink(u->tmp);
    free(u->tmp);
    u->tmp = NULL;
}

int srv_files_upload_write(srv_file_upload *u, const void *data, size_t n, char **err) {
    if (u->fd < 0) return eng_errorf(err, "upload already ended");
    if ((long long)n > max_bytes - u->bytes) { drop_tmp(u); return SRV_FILES_ETOOLARGE; }
    sha256_update(&u->sha, n, data);
    for (const char *p = data; n > 0;) {
        ssize_t w = write(u->fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) { int e = errno; drop_tmp(u); return eng_errorf(err, "writing the upload: %s", strerror(e)); }
        p += w; n -= (size_t)w; u->bytes += w;
    }
    return 0;
}

long long srv_files_upload_bytes(const srv_file_upload *u) { return u->bytes; }

json_t *srv_files_upload_finish(srv_file_upload *u, const char *filename, const char *purpose, char **err) {
    if (u->fd < 0) { eng_errorf(err, "upload already ended"); return NULL; }
    uint8_t digest[SHA256_DIGEST_SIZE];
    char hex[2 * SHA256_DIGEST_SIZE + 1], final[PATH_MAX], meta[PATH_MAX];
    sha256_digest(&u->sha, sizeof digest, digest);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) sprintf(hex + 2 * i, "%02x", digest[i]);
    if (fsync(u->fd) != 0) { int e = errno; drop_tmp(u); eng_errorf(err, "fsync of the upload: %s", strerror(e)); return NULL; }
    close(u->fd);
    u->fd = -1;
    long long now = (long long)time(NULL);
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:I}", "id", u->id, "object", "file", "bytes", (json_int_t)u->bytes,
                          "filename", filename, "purpose", purpose, "sha256", hex, "created_at", (json_int_t)now);
    char *text = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    pthread_mutex_lock(&lock);
    path_of(final, sizeof final, u->id, "");
    path_of(meta, sizeof meta, u->id, ".json");
    int ok = text && rename(u->tmp, final) == 0;
    if (!ok) eng_errorf(err, text ? "rename of the upload: %s" : "out of memory", strerror(errno));
    else {
        free(u->tmp);
        u->tmp = NULL;
        // the metadata commits the file (written atomically, directory fsynced)
        if (eng_write_file_atomic(meta, text, strlen(text), err) != 0) { unlink(final); ok = 0; }
    }
    if (ok && index_add(u->id, now, json_incref(o)) != 0) {
        unlink(meta); unlink(final);
        ok = 0;
        eng_errorf(err, "out of memory");
    }
    pthread_mutex_unlock(&lock);
    free(text);
    drop_tmp(u);   // nothing left when renamed; removes the temp file otherwise
    if (!ok) { json_decref(o); return NULL; }
    return o;
}

void srv_files_upload_abort(srv_file_upload *u) {
    if (!u) return;
    drop_tmp(u);
    free(u);
}
