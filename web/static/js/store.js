// Where the refresh token is kept between page loads: IndexedDB, shared by every tab of the origin.
// Not localStorage: another tab's copy of localStorage catches up asynchronously, so a tab taking
// the refresh lock could still read the token the previous holder had just spent. A committed
// IndexedDB transaction is what the next one sees, in any tab.

const DATABASE = "oneshot";
const STORE = "session";
const KEY = "refreshToken";
let connection = null;

function open() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DATABASE, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function transact(mode, operation) {
  connection ??= open();
  const database = await connection;
  return new Promise((resolve, reject) => {
    const transaction = database.transaction(STORE, mode);
    const request = operation(transaction.objectStore(STORE));
    transaction.oncomplete = () => resolve(request.result);
    transaction.onerror = transaction.onabort = () => reject(transaction.error);
  });
}

export const readRefreshToken = () => transact("readonly", (store) => store.get(KEY));
export const saveRefreshToken = (token) => transact("readwrite", (store) => store.put(token, KEY));
export const forgetRefreshToken = () => transact("readwrite", (store) => store.delete(KEY));
