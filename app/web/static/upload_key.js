// The upload key (upload policy `keys`): asked for once, kept in this browser's storage,
// sent as `Authorization: Bearer` with each upload, and forgotten when the server refuses it.

const STORAGE_KEY = "sealdrop.uploadKey";

/** The key this browser keeps, or null. */
export function uploadKey() {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null; // storage disabled: the key is asked for again
  }
}

/** Keep `key` in this browser. */
export function keepKey(key) {
  try {
    localStorage.setItem(STORAGE_KEY, key);
  } catch {
    // Without storage the key lives only in this page (below).
  }
  remembered = key;
}

/** Forget the key (the server refused it). */
export function forgetKey() {
  try {
    localStorage.removeItem(STORAGE_KEY);
  } catch {
    // nothing kept
  }
  remembered = null;
}

let remembered = uploadKey();

/** The key to send with an upload, or null. */
export function currentKey() {
  return remembered;
}

/**
 * Wire the key form: shown when there is no key (with `message`), hiding the upload
 * form until a key is given.
 */
export function setUpKeyForm(keyForm, uploadForm) {
  const field = keyForm.elements["upload-key"];
  const error = keyForm.querySelector("#key-error");
  const show = (message) => {
    keyForm.hidden = false;
    uploadForm.hidden = true;
    error.textContent = message || "";
    error.hidden = !message;
    field.value = "";
    field.focus();
  };
  keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = field.value.trim();
    if (!/^[A-Za-z0-9._~+/-]+=*$/.test(key)) {
      show("Enter the upload key you were given (it starts with sdk_).");
      return;
    }
    keepKey(key);
    keyForm.hidden = true;
    uploadForm.hidden = false;
  });
  if (currentKey() === null) show("");
  return { ask: show };
}
