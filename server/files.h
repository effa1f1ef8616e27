// files.h — uploaded files (POST /v1/files): stored under <data_dir>/files/,
// one file of bytes and one JSON of metadata per file, both named after the
// file's id (never after the client's filename), so nothing a client sends
// can name a path outside that directory.
//
// Layout:   <data_dir>/files/<id>        the bytes
//           <data_dir>/files/<id>.json   the file object (API.md); its presence commits the file
//           <data_dir>/files/.tmp-<id>   an upload in progress (removed at start-up)
// An upload streams to the temp file (sha256 computed on the way), then
// fsync, rename to <id>, write <id>.json atomically, fsync of the directory.
// A crash at any point leaves either no file or a whole one.
//
// Thread safety: every function may be called from any thread after
// srv_files_init (the index is under one mutex; I/O of an upload is not).
#ifndef SRV_FILES_H
#define SRV_FILES_H
#include <jansson.h>    // json_t
#include <stddef.h>     // size_t

// Opens (creates) <data_dir>/files, removes unfinished uploads and loads the
// metadata of every stored file. max_file_bytes bounds one upload. 0, or -1
// with *err (a startup error).
int srv_files_init(const char *data_dir, long long max_file_bytes, char **err);
// Forgets the index (the files stay on disk). NULL-safe to call twice.
void srv_files_free(void);

// 1 if id has the shape of a file id: "file-" + 24 lowercase hex digits.
int srv_files_valid_id(const char *id);
// 1 if name is an acceptable filename: [A-Za-z0-9._-]{1,255}, not "." or
// "..", no "..". Filenames are metadata only; they never name anything on disk.
int srv_files_valid_filename(const char *name);

// ---------------------------------------------------------------- for the jobs code
// The absolute path of the stored bytes of file `id` (malloc'd), or NULL if
// the id is malformed or unknown.
char *srv_files_path(const char *id);
// The file object of `id` (a new reference), or NULL if malformed or unknown.
json_t *srv_files_object(const char *id);

// ---------------------------------------------------------------- for the API
// The files in creation order (created_at, then id), oldest first, or newest
// first when desc: at most `limit` objects after the file `after` (NULL:
// from the start). *has_more says whether more follow. Returns a JSON array
// (new reference), or NULL when `after` is not a known id.
json_t *srv_files_list(const char *after, int limit, int desc, int *has_more);
// Removes file id (metadata first, so a crash halfway leaves no half file).
// 0, or -1 if malformed or unknown.
int srv_files_delete(const char *id);

// An upload in progress: created, fed chunk by chunk, then finished or aborted.
typedef struct srv_file_upload srv_file_upload;
enum { SRV_FILES_EIO = -1, SRV_FILES_ETOOLARGE = -2 };
// Creates the temp file of a new upload (with a fresh id). NULL with *err
// (a server-side failure: the directory is not writable).
srv_file_upload *srv_files_upload_begin(char **err);
// Appends n bytes. 0, SRV_FILES_ETOOLARGE once the upload would pass
// max_file_bytes (the temp file is removed at once), or SRV_FILES_EIO with
// *err (disk full...; the temp file is removed).
int srv_files_upload_write(srv_file_upload *u, const void *data, size_t n, char **err);
// Bytes received so far.
long long srv_files_upload_bytes(const srv_file_upload *u);
// Makes the upload a stored file with this filename and purpose (both
// validated by the caller) and returns its object (new reference), or NULL
// with *err. The upload is finished either way (free it with _abort).
json_t *srv_files_upload_finish(srv_file_upload *u, const char *filename, const char *purpose, char **err);
// Removes the temp file of an unfinished upload and frees u. NULL-safe.
void srv_files_upload_abort(srv_file_upload *u);
// The largest upload (max_file_bytes given to srv_files_init).
long long srv_files_max_bytes(void);

#endif
