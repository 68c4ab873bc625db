// Progressive enhancement only: every page works without this file.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy-target]");
  if (!button) return;
  const input = document.getElementById(button.dataset.copyTarget);
  const status = document.getElementById("copy-status");
  const done = (text) => { if (status) status.textContent = text; };
  input.select();
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(input.value).then(() => done("Link copied."), () => done("Press Ctrl+C to copy."));
  } else {
    done(document.execCommand("copy") ? "Link copied." : "Press Ctrl+C to copy.");
  }
});

// A form came back with errors: move focus to its summary so it is read out and the keyboard
// starts there; each entry in it moves focus to its field.
document.addEventListener("DOMContentLoaded", () => {
  const summary = document.querySelector("[data-error-summary]");
  if (summary) summary.focus();
});
document.addEventListener("click", (event) => {
  const link = event.target.closest("[data-error-summary] a[href^='#']");
  if (!link) return;
  const field = document.getElementById(link.hash.slice(1));
  if (!field) return;
  event.preventDefault();
  field.focus();
  field.scrollIntoView({ block: "center" });
});

// Bulk invite: create the rows in slices, showing progress (the plain form post also works).
document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (form.id !== "bulk-form" || !event.submitter || event.submitter.name !== "confirm") return;
  const total = Number(form.dataset.rows || 0);
  if (!total || !window.fetch) return;
  event.preventDefault();
  const progress = document.getElementById("bulk-progress");
  const bar = progress.querySelector("progress");
  progress.hidden = false;
  bar.max = total;
  let created = 0;
  let skipped = 0;
  const slice = 200;
  for (let start = 0; start < total; start += slice) {
    const data = new FormData(form);
    data.delete("upload");
    data.set("confirm", "1");
    data.set("start", String(start));
    data.set("count", String(slice));
    data.set("created_so_far", String(created));
    data.set("skipped_so_far", String(skipped));
    let answer;
    try {
      const response = await fetch(form.action || window.location.href, {
        method: "POST", body: data, headers: { Accept: "application/json" }, credentials: "same-origin",
      });
      answer = response.ok ? await response.json() : null;
    } catch (error) { answer = null; }
    if (!answer) {
      progress.lastChild.textContent = ` Stopped after ${created} invitations: reload and preview again.`;
      return;
    }
    created += answer.created;
    skipped += answer.skipped;
    bar.value = Math.min(total, start + slice);
    progress.lastChild.textContent = ` Processed ${bar.value} of ${total} rows; ${created} invitations created…`;
  }
  window.location.href = form.dataset.done;
});
