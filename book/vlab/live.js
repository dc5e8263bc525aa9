// Live lab status and live reload for the book served by `vlab serve`.
//
// The page polls the server's `_vlab/status` (the student's last check
// results, read from the workspace state that `vlab check` and `vlab watch`
// write). Links to lab pages get a badge with the lab's progress, lab pages
// get a progress panel and a badge on each step, and the page reloads itself
// when the server has rebuilt the book. Sidebar entries of chapters get the
// reader's quiz score (quiz.js posts the answers). Opened from disk it does nothing.
(function () {
    "use strict";
    if (location.protocol !== "http:" && location.protocol !== "https:") {
        return;
    }
    const root = typeof path_to_root === "string" ? path_to_root : "";
    const endpoint = root + "_vlab/status";
    const MARK = {pass: "✓", fail: "✗", error: "!", skipped: "–"};
    const WORD = {pass: "passed", fail: "failed", error: "could not run", skipped: "cannot run on this machine"};
    let generation = null;
    let delay = 1000;

    function el(tag, cls, text) {
        const e = document.createElement(tag);
        if (cls) {
            e.className = cls;
        }
        if (text !== undefined) {
            e.textContent = text;
        }
        return e;
    }

    function badge(outcome, text, title) {
        const b = el("span", "vlab-badge", text);
        b.dataset.outcome = outcome;
        if (title) {
            b.title = title;
        }
        return b;
    }

    // One badge per host element, replaced on every refresh.
    function place(host, b) {
        const old = host.querySelector(":scope > .vlab-badge");
        if (old) {
            old.replaceWith(b);
        } else {
            host.appendChild(b);
        }
    }

    function labOutcome(lab) {
        const steps = lab.steps;
        if (!lab.started) {
            return "not-started";
        }
        if (!steps.some((s) => s.outcome)) {
            return "unchecked";
        }
        if (steps.every((s) => s.outcome === "pass")) {
            return "pass";
        }
        return steps.some((s) => s.outcome === "fail" || s.outcome === "error") ? "fail" : "partial";
    }

    function labBadge(lab) {
        const outcome = labOutcome(lab);
        if (outcome === "not-started") {
            return badge(outcome, "·", "not started");
        }
        if (outcome === "unchecked") {
            return badge(outcome, "started", "started, not checked yet");
        }
        const text = outcome === "pass" ? "✓ " + lab.points + "/" + lab.max_points : lab.points + "/" + lab.max_points;
        return badge(outcome, text, lab.points + " of " + lab.max_points + " points at the last check");
    }

    function stepBadge(step) {
        if (!step.outcome) {
            return badge("unchecked", "not checked yet");
        }
        return badge(step.outcome, MARK[step.outcome] + " " + WORD[step.outcome], step.message || undefined);
    }

    function renderLinks(status) {
        document.querySelectorAll("a[href]").forEach((a) => {
            if (a.closest(".vlab-status")) {
                return;
            }
            const m = a.getAttribute("href").match(/(?:^|\/)labs\/([0-9]+-[a-z0-9-]+)\.html$/);
            const lab = m && status.labs[m[1]];
            if (lab) {
                place(a, labBadge(lab));
            }
        });
    }

    // A chapter's quiz score beside its sidebar entry, once a question is answered.
    function renderQuizzes(status) {
        const scores = status.quizzes || {};
        document.querySelectorAll("#mdbook-sidebar a[href]").forEach((a) => {
            const href = a.getAttribute("href");
            const m = href.match(/(?:^|\/)([a-z0-9-]+)\.html$/);
            const score = m && !/(?:^|\/)labs\//.test(href) && scores[m[1]];
            const old = a.querySelector(":scope > .vlab-quiz-badge");
            if (!score || score.answered === 0) {
                if (old) {
                    old.remove();
                }
                return;
            }
            const b = el("span", "vlab-quiz-badge", "quiz " + score.correct + "/" + score.questions);
            b.dataset.chapter = m[1];
            b.dataset.state = score.correct === score.questions ? "done" : "partial";
            b.title = "chapter quiz: " + score.correct + " of " + score.questions + " correct, " +
                score.answered + " answered";
            if (old) {
                old.replaceWith(b);
            } else {
                a.appendChild(b);
            }
        });
    }

    function renderPanel(panel, status) {
        const id = panel.dataset.lab;
        const lab = status.labs[id];
        panel.replaceChildren();
        if (!lab) {
            panel.dataset.state = "unknown";
            panel.append(el("p", "", "vlab does not know a lab " + id + "; is `vlab serve` running from this checkout?"));
            return;
        }
        const head = el("p", "vlab-status-head");
        head.append(el("strong", "", "Your progress: "));
        if (!lab.started) {
            panel.dataset.state = "not-started";
            head.append("not started. Run ", el("code", "", "vlab start " + id), " to copy the starter into your workspace.");
            panel.append(head);
            return;
        }
        if (!lab.last_checked) {
            panel.dataset.state = "started";
            head.append("started in ", el("code", "", lab.dir), ", not checked yet. Run ",
                el("code", "", "vlab check " + id), " or ", el("code", "", "vlab watch " + id), ".");
            panel.append(head);
        } else {
            panel.dataset.state = "checked";
            const when = new Date(lab.last_checked * 1000).toLocaleTimeString();
            head.append(lab.points + " of " + lab.max_points + " points at the last check (" + when + ").");
            panel.append(head);
        }
        const list = el("ul", "vlab-steps");
        lab.steps.forEach((step) => {
            const sid = step.id;
            const li = el("li");
            li.dataset.step = sid;
            li.dataset.outcome = step.outcome || "unchecked";
            li.append(stepBadge(step), " ", el("code", "", sid), " " + step.title + " ",
                el("span", "vlab-points", step.points + "/" + step.max_points));
            if (step.outcome && step.outcome !== "pass" && step.message) {
                li.append(el("div", "vlab-message", step.message));
            }
            list.append(li);
        });
        panel.append(list);
    }

    function renderSteps(panel, status) {
        const lab = status.labs[panel.dataset.lab];
        if (!lab) {
            return;
        }
        let sections = {};
        try {
            sections = JSON.parse(panel.dataset.sections || "{}");
        } catch (e) {
            sections = {};
        }
        lab.steps.forEach((step) => {
            const sid = step.id;
            [document.getElementById("check-" + sid), sections[sid] && document.getElementById(sections[sid])]
                .filter((h) => h)
                .forEach((h) => {
                    const b = stepBadge(step);
                    b.dataset.step = sid;
                    place(h, b);
                });
        });
    }

    function renderBuildError(status) {
        let banner = document.getElementById("vlab-build-error");
        if (!status.build_error && !status.error) {
            if (banner) {
                banner.remove();
            }
            return;
        }
        if (!banner) {
            banner = el("div");
            banner.id = "vlab-build-error";
            document.body.prepend(banner);
        }
        banner.textContent = status.build_error
            ? "The book did not rebuild (showing the last good build): " + status.build_error
            : "Lab status unavailable: " + status.error;
    }

    // The reader's comparison chart (choosing chapter), fetched again when a
    // check has run since it was drawn.
    let drawn = 0;
    function renderComparison(status) {
        const key = JSON.stringify(Object.values(status.labs).map((l) => [l.last_checked, l.steps.map((s) => s.outcome)]));
        document.querySelectorAll(".vlab-compare").forEach((box) => {
            if (box.dataset.key === key) {
                return;
            }
            box.dataset.key = key;
            drawn += 1;
            const img = el("img");
            img.dataset.vlabLive = "";
            img.alt = "Your measurements of every tier, relative to your bare-metal baseline (vlab compare)";
            img.src = root + "_vlab/compare.svg?drawn=" + drawn;
            box.replaceChildren(img);
        });
    }

    function render(status) {
        document.querySelectorAll(".vlab-status[data-lab]").forEach((p) => {
            renderPanel(p, status);
            renderSteps(p, status);
        });
        renderComparison(status);
        renderLinks(status);
        renderQuizzes(status);
        renderBuildError(status);
    }

    function offline() {
        document.querySelectorAll(".vlab-status[data-lab]").forEach((p) => {
            p.dataset.state = "offline";
            p.textContent = "vlab serve is not answering; your progress shows again when it runs.";
        });
    }

    function poll() {
        fetch(endpoint, {cache: "no-store"})
            .then((r) => {
                if (!r.ok) {
                    throw new Error("status " + r.status);
                }
                return r.json();
            })
            .then((status) => {
                if (generation !== null && status.generation !== generation) {
                    location.reload();
                    return;
                }
                generation = status.generation;
                delay = 1000;
                render(status);
            })
            .catch(() => {
                delay = Math.min(delay * 2, 10000);
                offline();
            })
            .finally(() => setTimeout(poll, delay));
    }

    poll();
})();
