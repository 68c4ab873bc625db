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
