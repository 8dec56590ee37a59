// Errors of the file service that the page shows: a stable `code` (too_large, not_ready,
// incomplete, corrupt) and a message for people.
export class FileError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "FileError";
    this.code = code;
  }
}
