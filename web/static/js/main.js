// The page's start-up: its parts (auth, history, run, views, threads, conversation) wired to each
// other, and the page swapped between signed out and signed in.

import { hideAuthForm, initAuthForm, showAuthForm } from "./auth.js";
import { composerBusy } from "./composer.js";
import { cancelLatest, onTurnStatus, openThreadId } from "./conversation.js";
import { $ } from "./dom.js";
import { clearHistory, loadHistory, markRunStatus, onRunChosen, watchStatuses } from "./history.js";
import { cancelRun, onRunView, openRun, shownRunId } from "./run.js";
import { session } from "./services.js";
import { clearThreads, loadThreads, onThreadChosen, showThreadStatus } from "./threads.js";
import { openThread, showStart, showView, startThread, submitPrompt } from "./views.js";

const ID = "([0-9a-f-]{36})";

function showSignedOut(notice = "") {
  showView("start");
  clearHistory(); // nothing of the last user stays in the page
  clearThreads();
  $("timeline").replaceChildren();
  showAuthForm(notice);
}

async function showSignedIn() {
  hideAuthForm();
  $("current-user").textContent = session.userId;
  await Promise.all([loadHistory(false), loadThreads(false)]);
  watchStatuses();
  const run = new RegExp(`^#run-${ID}$`).exec(location.hash);
  const thread = new RegExp(`^#thread-${ID}$`).exec(location.hash);
  if (run) openRun(run[1]);
  else if (thread) openThread(thread[1]);
  else showStart();
}

async function boot() {
  initAuthForm(showSignedIn);
  $("sign-out").addEventListener("click", () => session.signOut().catch(() => {}));
  $("new-run").addEventListener("submit", submitPrompt);
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("new-run").requestSubmit();
  });
  $("cancel-run").addEventListener("click", cancelRun);
  $("cancel-turn").addEventListener("click", cancelLatest);
  $("more-runs").addEventListener("click", () => loadHistory(true));
  $("more-threads").addEventListener("click", () => loadThreads(true));
  $("new-thread").addEventListener("click", startThread);
  $("new-single-run").addEventListener("click", showStart);
  onRunChosen({ openRun, openThread, shownRunId });
  onRunView({ showView, openThread });
  onThreadChosen(openThread, (threadId) => {
    if (openThreadId() === threadId) showStart();
    loadHistory(false); // its runs went with it
  });
  onTurnStatus((threadId, runId, status) => {
    showThreadStatus(threadId, runId, status);
    markRunStatus(runId, status);
    if (openThreadId() === threadId) composerBusy(status);
  });
  session.addEventListener("ended", (event) => showSignedOut(event.detail.message));
  session.addEventListener("replaced", () => location.reload()); // start over with the new session
  if (!(await session.hasStoredSession())) return showSignedOut();
  try {
    await session.resume();
    await showSignedIn();
  } catch (error) {
    showSignedOut(error.code === "session_ended" ? error.message : `Couldn't restore your session: ${error.message}`);
  }
}

boot();
