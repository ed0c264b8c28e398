"""The Gradio demo, launched on 127.0.0.1 and driven through gradio_client (and a real browser)."""

import inspect
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import REPO_ROOT, TOKEN, free_port
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

import app
from finetune import artifacts, hub, serving
from finetune.mistakes import most_confident_mistakes
from finetune.run_views import MISTAKES_SHOWN, ServedModel, load_served_model, metrics_view


def _launch(model: "str | ServedModel", mcp_server: bool = False, **build):
    """The demo as `python app.py` serves it (its launch settings), on a free port of 127.0.0.1."""
    run = load_served_model(model) if isinstance(model, str) else model
    demo = app.build_demo(run, **build)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                mcp_server=mcp_server, **serving.launch_settings())
    return demo, f"http://127.0.0.1:{port}/"


class HeldClassifier:
    """The real classifier, except that a call whose first review starts with HOLD waits until the
    test sets `release`; it records how many model calls were in progress at once."""

    def __init__(self, classifier):
        self.classifier = classifier
        self.release = threading.Event()
        self.inside = 0
        self.most_inside = 0
        self._lock = threading.Lock()

    def __getattr__(self, name):  # max_length, label_names, quantized
        return getattr(self.classifier, name)

    def predict(self, texts, batch_size=32):
        with self._lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        try:
            if texts[0].startswith("HOLD"):
                assert self.release.wait(60), "the test never released the held call"
            return self.classifier.predict(texts, batch_size=batch_size)
        finally:
            with self._lock:
                self.inside -= 1

    def predict_one(self, text):
        return self.predict([text], batch_size=1)[0]


@pytest.fixture
def held_app(trained_run):
    """The demo on the trained run, its classifier held by the test (HeldClassifier)."""
    run = load_served_model(str(trained_run))
    run.classifier = held = HeldClassifier(run.classifier)
    demo, url = _launch(run)
    yield Client(url, verbose=False, max_workers=256), held, url
    held.release.set()
    demo.close()


def _wait_until(condition, timeout=20.0, what="condition"):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _queue_size(url: str) -> int:
    return httpx.get(url + "gradio_api/queue/status").json()["queue_size"]


@pytest.fixture(scope="module")
def local_app(trained_run):
    demo, url = _launch(str(trained_run))
    yield Client(url, verbose=False), trained_run, url
    demo.close()


@pytest.fixture(scope="module")
def hub_app(fake_hub, trained_run):
    hub.push_folder(trained_run, "me/app-model", TOKEN)
    demo, url = _launch("me/app-model")
    yield Client(url, verbose=False), trained_run
    demo.close()


def _confidences(answer) -> dict[str, float]:
    label = answer[0]
    return {c["label"]: c["confidence"] for c in label["confidences"]}


def test_classify_returns_every_label_with_confidences(local_app):
    client, _, _ = local_app
    answer = client.predict("the film was great and wonderful, loved it", api_name="/classify")
    scores = _confidences(answer)
    assert set(scores) == {"negative", "positive"}
    assert sum(scores.values()) == pytest.approx(1.0, abs=1e-4)
    assert answer[0]["label"] == max(scores, key=scores.get)
    assert "Read" in answer[1] and "tokens" in answer[1]


def test_classify_matches_the_model_folder(local_app):
    from finetune.inference import ReviewClassifier

    client, folder, _ = local_app
    text = "awful boring plot and dull acting"
    expected = ReviewClassifier(folder).predict_one(text).scores
    scores = _confidences(client.predict(text, api_name="/classify"))
    for name, value in expected.items():
        assert scores[name] == pytest.approx(value, abs=1e-4)


def test_classify_says_what_happens_to_long_reviews(local_app):
    client, _, _ = local_app
    answer = client.predict("great " * 300, api_name="/classify")
    assert "only its end was read, as in training" in answer[1]  # the default run reads a long review's tail


@pytest.mark.parametrize("text, message", [("   ", "Type or paste a review"),
                                           ("great " * 5000, "the limit is 20,000")])
def test_classify_bad_input_gets_a_message(local_app, text, message):
    client, _, _ = local_app
    with pytest.raises(Exception, match=message):
        client.predict(text, api_name="/classify")


def test_classify_batch_from_csv_column(local_app, tmp_path):
    client, _, _ = local_app
    path = tmp_path / "reviews.csv"
    path.write_text('id,review\n1,"great superb film"\n2,"awful dull plot"\n3,"the cast was brilliant"\n')
    table, download, note = client.predict(handle_file(str(path)), "review", api_name="/classify_batch")
    assert table["headers"][:4] == ["id", "review", "label", "confidence"]  # the file's other columns are kept
    assert [row[0] for row in table["data"]] == ["1", "2", "3"]
    assert [row[1] for row in table["data"]] == ["great superb film", "awful dull plot", "the cast was brilliant"]
    assert {row[2] for row in table["data"]} <= {"negative", "positive"}
    downloaded = Path(download).read_text().splitlines()
    assert downloaded[0].startswith("id,review,label,confidence") and len(downloaded) == 4
    assert note == "Classified column 'review'. 3 reviews."


def test_classify_batch_from_an_excel_workbook_upload(local_app, tmp_path):
    import openpyxl

    client, _, _ = local_app
    workbook = openpyxl.Workbook()
    for row in (["id", "review", "stars"], [1, "great superb film", 5], [2, "awful dull plot", 1]):
        workbook.active.append(row)
    workbook.save(tmp_path / "reviews.xlsx")
    table, download, note = client.predict(handle_file(str(tmp_path / "reviews.xlsx")), "review",
                                           api_name="/classify_batch")
    assert table["headers"][:4] == ["id", "stars", "review", "label"]
    assert [row[:3] for row in table["data"]] == [["1", "5", "great superb film"], ["2", "1", "awful dull plot"]]
    assert note == "Classified column 'review'. 2 reviews."
    assert len(Path(download).read_text().splitlines()) == 3


def test_classify_batch_from_text_file(local_app, tmp_path):
    client, _, _ = local_app
    path = tmp_path / "reviews.txt"
    path.write_text("great film\n\nawful film\n")
    table, _, _ = client.predict(handle_file(str(path)), "(one review per line)", api_name="/classify_batch")
    assert len(table["data"]) == 2


@pytest.mark.parametrize(
    "name, content, column, message",
    [
        ("reviews.csv", b"id,review\n1,great\n", "text", "Column 'text' is not in the file. Its columns: id, review"),
        ("garbled.txt", bytes(range(128, 256)) * 10, None, "not UTF-8 text"),
        ("binary.txt", b"\x00\x01\x02great\x00", None, "looks binary"),
        ("many.txt", b"great\n" * 1001, None, "the limit is 1,000 per request"),
        ("big.txt", b"a" * (2 * 1024 * 1024 + 1), None, "maximum file size of 2097152 bytes"),  # client-side
        ("blank.txt", b"\n\n", None, "The file is empty"),
        ("empty.csv", b"", None, "The file is empty"),
        ("header-only.csv", b"id,review\n", None, "has a header but no rows"),
        ("numbers.csv", b"id,stars\n1,5\n2,3\n", None, r"No column of this file holds text \(id, stars hold numbers"),
        ("ids.csv", b"id,comment\n1,great film\n", "id", r"Column 'id' holds numbers, not reviews. Choose the column "
                                                          r"of reviews \(here: comment\)"),
    ],
)
def test_classify_batch_bad_files_get_messages(local_app, tmp_path, name, content, column, message):
    client, _, _ = local_app
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(Exception, match=message):
        client.predict(handle_file(str(path)), column, api_name="/classify_batch")


def test_metrics_endpoint_returns_history_plots_confusion_and_summary(local_app):
    client, folder, _ = local_app
    history, losses, scores, confusion, summary = client.predict(api_name="/metrics")
    stored = artifacts.read_json(folder, artifacts.HISTORY_FILE)
    assert [row[0] for row in history["data"]] == [row["epoch"] for row in stored]
    assert history["headers"][:4] == ["epoch", "step", "train_loss", "eval_loss"]
    assert losses["columns"] == ["epoch", "series", "loss"]
    assert {row[1] for row in losses["data"]} == {"train_loss", "eval_loss"} and len(losses["data"]) == 4
    assert {row[1] for row in scores["data"]} == {"accuracy", "f1"}
    confusion_rows = confusion["data"]
    assert sum(sum(row[1:]) for row in confusion_rows) == 32
    assert "**Test**: accuracy" in summary


def test_app_serves_a_model_by_hub_repo_id(hub_app):
    client, folder = hub_app
    from finetune.inference import ReviewClassifier

    text = "great wonderful film"
    expected = ReviewClassifier(folder).predict_one(text).scores
    scores = _confidences(client.predict(text, api_name="/classify"))
    assert scores["positive"] == pytest.approx(expected["positive"], abs=1e-4)
    history, *_rest, summary = client.predict(api_name="/metrics")
    assert len(history["data"]) == 2
    assert "me/app-model" in summary


def test_app_without_a_model_says_what_to_run(tmp_path):
    run = load_served_model(str(tmp_path / "nothing-here"))
    assert run.classifier is None
    assert "accelerate launch finetune/train.py" in run.problem and "MODEL_ID" in run.problem
    # a path that is not a folder is named as such, not as a malformed Hub repo id
    assert "nothing-here`: no such folder" in run.problem and "Repo id" not in run.problem
    with pytest.raises(Exception, match="accelerate launch finetune/train.py"):
        app.classify(run, "great")
    # No history: no empty plots (Gradio would draw axes from -Infinity), no empty tables
    demo = app.build_demo(run)
    hidden = {getattr(block, "label", None) for block in demo.blocks.values() if getattr(block, "visible", True) is False}
    assert {"Per-epoch history", "Confusion matrix (rows: true label)"} <= hidden
    rows = [block for block in demo.blocks.values() if isinstance(block, app.gr.Row)]
    assert any(block.visible is False and {child.elem_id for child in block.children} == {"loss-plot", "score-plot"}
               for block in rows)


def test_app_in_a_space_without_model_id_speaks_to_the_owner(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "me/reviews-demo")
    monkeypatch.delenv("MODEL_ID", raising=False)
    assert app.no_model_hint([]) == app.SPACE_WITHOUT_MODEL
    assert app.no_model_hint(["--model_id", "me/model"]) is None
    monkeypatch.setenv("MODEL_ID", "me/model")
    assert app.no_model_hint([]) is None


def test_python_app_py_starts_and_answers(trained_run):
    port = free_port()
    env = {**os.environ, "MODEL_ID": str(trained_run), "GRADIO_SERVER_PORT": str(port)}
    process = subprocess.Popen([sys.executable, "app.py"], cwd=REPO_ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 90
        url = f"http://127.0.0.1:{port}/"
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                client = Client(url, verbose=False)
                break
            except Exception:
                assert time.time() < deadline, "app did not start in 90 s"
                time.sleep(0.5)
        answer = client.predict("great film", api_name="/classify")
        assert answer[0]["label"] in ("negative", "positive")
        # the launch settings hold under `python app.py` (and so on a Space): the server refuses an
        # oversized upload itself, whatever the client checks
        refused = httpx.post(url + "gradio_api/upload", files={"files": ("big.txt", b"a" * (serving.MAX_UPLOAD_BYTES + 1))})
        assert refused.status_code == 413
        # no MCP server outside a Space unless asked for (--mcp_server)
        assert httpx.get(url + "gradio_api/mcp/schema").status_code == 404
    finally:
        process.terminate()
        process.wait(timeout=30)


# --- limits: what anyone can send, and how many at once -----------------------------------------


def test_upload_over_the_limit_is_refused_by_the_server_and_not_stored(local_app):
    _, _, url = local_app
    cache = Path(app.gr.File().GRADIO_CACHE)
    before = set(cache.rglob("*")) if cache.exists() else set()
    over = httpx.post(url + "gradio_api/upload", files={"files": ("big.txt", b"a" * (serving.MAX_UPLOAD_BYTES + 1))})
    assert over.status_code == 413 and "maximum allowed size of 2097152 bytes" in over.text
    assert not [p for p in set(cache.rglob("*")) - before if p.is_file() and p.stat().st_size > serving.MAX_UPLOAD_BYTES]
    at_limit = httpx.post(url + "gradio_api/upload", files={"files": ("ok.txt", b"a" * serving.MAX_UPLOAD_BYTES)})
    assert at_limit.status_code == 200


def test_read_reviews_reads_nothing_past_the_limit(tmp_path):
    path = tmp_path / "big.txt"
    path.write_bytes(b"great\n" * (serving.MAX_UPLOAD_BYTES // 6 + 1))
    with pytest.raises(serving.InputProblem, match="the limit is 2 MB"):
        serving.read_batch_file(str(path), None)


def test_file_columns_reads_only_the_first_64_kb(tmp_path):
    long_header = tmp_path / "long_header.csv"
    long_header.write_text("x" * 1_000_000 + ",review\n1,great\n")
    assert app.file_columns(str(long_header)).choices == []
    long_row = tmp_path / "long_row.csv"
    long_row.write_text('id,review\n1,"' + "great film " * 100_000 + '"\n')
    dropdown = app.file_columns(str(long_row))
    assert [name for name, _ in dropdown.choices] == ["id", "review"] and dropdown.value == "review"
    cut_character = tmp_path / "accents.csv"  # a two-byte character cut by the 64 KB boundary is no error
    cut_character.write_bytes(("critique," + "é" * 40_000 + "\n").encode())
    assert app.file_columns(str(cut_character)).choices == []


def test_classify_batch_cuts_each_review_to_the_single_review_limit(local_app, tmp_path):
    client, _, _ = local_app
    path = tmp_path / "one-long-line.txt"
    path.write_bytes((b"great film " * serving.MAX_UPLOAD_BYTES)[: serving.MAX_UPLOAD_BYTES])
    table, _, _ = client.predict(handle_file(str(path)), "(one review per line)", api_name="/classify_batch")
    (row,) = table["data"]
    assert len(row[0]) == serving.MAX_REVIEW_CHARS
    assert row[table["headers"].index("truncated")] is True


def test_classify_batch_leaves_no_folder_per_request(trained_run, tmp_path, monkeypatch):
    cache = tmp_path / "gradio-cache"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))  # this demo's own cache, read at build and launch
    demo, url = _launch(str(trained_run), cache_cleaning=(1, 1))
    try:
        client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        written = set()
        for i in range(5):
            path = tmp_path / f"reviews-{i}.txt"
            path.write_text(f"great film {i}\nawful film\n")
            client.predict(handle_file(str(path)), "(one review per line)", api_name="/classify_batch")
            written |= {p for p in cache.iterdir() if p.name.startswith("predictions-")}
        assert written and all(p.suffix == ".csv" for p in written)  # in the cache, flat: no folder of their own
        _wait_until(lambda: not any(cache.iterdir()), timeout=15, what="the cache to be cleaned")
    finally:
        demo.close()


def test_build_demo_cleans_the_cache_by_default(trained_run):
    demo = app.build_demo(load_served_model(str(trained_run)))
    assert demo.delete_cache == serving.CACHE_CLEANING


def test_sweep_cache_removes_only_what_gradio_leaves_behind(tmp_path):
    old = time.time() - 7200
    paths = {name: tmp_path / name for name in ("a" * 64, "b" * 64, "c" * 64, "vibe_edit_history",
                                                "tmpempty", "tmpfull", "tmpnew", "reviews.csv")}
    for name in ("a" * 64, "b" * 64, "c" * 64, "vibe_edit_history"):
        paths[name].mkdir()
    (paths["b" * 64] / "reviews.csv").write_text("review\ngreat\n")
    for name in ("tmpempty", "tmpnew", "reviews.csv"):
        paths[name].write_text("")
    paths["tmpfull"].write_text("great")
    for name in ("a" * 64, "b" * 64, "vibe_edit_history", "tmpempty", "tmpfull", "reviews.csv"):
        os.utime(paths[name], (old, old))
    assert serving.sweep_cache(tmp_path, older_than=3600) == 2  # the old empty hash folder and tmp file
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(set(paths) - {"a" * 64, "tmpempty"})


def test_model_calls_share_one_limit_and_the_queue_cannot_be_skipped(held_app, tmp_path):
    client, held, url = held_app
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("HOLD great film\nawful film\n")
    jobs = [client.submit(f"HOLD great film {i}", api_name="/classify") for i in range(3)]
    jobs.append(client.submit(handle_file(str(reviews)), "(one review per line)", api_name="/classify_batch"))
    _wait_until(lambda: held.inside >= serving.MODEL_CONCURRENCY and held.inside + _queue_size(url) == 4,
                what="the calls to run or queue")
    time.sleep(0.5)  # had a third call been allowed in, it would be in by now
    assert held.most_inside == serving.MODEL_CONCURRENCY
    held.release.set()
    for job in jobs:
        assert job.result(timeout=30)
    assert held.most_inside == serving.MODEL_CONCURRENCY
    # the REST route would skip the queue and its limits
    assert httpx.post(url + "gradio_api/run/classify", json={"data": ["great"]}).status_code == 404


def test_build_demo_puts_every_model_call_in_one_concurrency_group(trained_run):
    demo = app.build_demo(load_served_model(str(trained_run)))
    model_calls = [fn for fn in demo.fns.values()
                   if fn.fn and fn.fn.__name__ in ("classify", "explain", "classify_batch")]
    assert len(model_calls) == 5  # the button and Enter in the textbox (each: classify, then explain), the file job
    assert {(fn.concurrency_id, fn.concurrency_limit) for fn in model_calls} == {("model", serving.MODEL_CONCURRENCY)}
    assert serving.QUEUE_SIZE >= 200


def test_classify_batch_second_file_job_is_refused_while_one_is_in_line(held_app, tmp_path):
    client, held, url = held_app
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text("HOLD great film\n")
    second.write_text("awful film\n")
    running = client.submit(handle_file(str(first)), "(one review per line)", api_name="/classify_batch")
    _wait_until(lambda: held.inside == 1, what="the first file job to run")
    with pytest.raises(Exception, match="Files go one at a time"):
        client.predict(handle_file(str(second)), "(one review per line)", api_name="/classify_batch")
    # single reviews keep the other model slot meanwhile
    assert client.predict("great film", api_name="/classify")[0]["label"] in ("negative", "positive")
    held.release.set()
    assert len(running.result(timeout=30)[0]["data"]) == 1
    table, _, _ = client.predict(handle_file(str(second)), "(one review per line)", api_name="/classify_batch")
    assert len(table["data"]) == 1


def test_classify_batch_file_jobs_arriving_together_still_run_one_at_a_time(held_app, tmp_path, monkeypatch):
    client, held, _ = held_app
    monkeypatch.setattr(serving, "file_jobs_in_line", lambda queue: 0)  # as if both passed the door at once
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text("HOLD great film\n")
    second.write_text("awful film\n")
    running = client.submit(handle_file(str(first)), "(one review per line)", api_name="/classify_batch")
    _wait_until(lambda: held.inside == 1, what="the first file job to run")
    with pytest.raises(AppError, match="Files go one at a time"):
        client.predict(handle_file(str(second)), "(one review per line)", api_name="/classify_batch")
    held.release.set()
    running.result(timeout=30)


def test_burst_of_200_callers_is_answered_in_full(held_app):
    client, held, url = held_app
    callers = 200
    # every call waits behind two held ones: the worst case, with the whole burst in the queue at once
    jobs = [client.submit(f"HOLD great film {i}", api_name="/classify") for i in range(callers)]
    _wait_until(lambda: _queue_size(url) + held.inside == callers or any(job.done() for job in jobs),
                what="the burst to arrive")
    held.release.set()
    failures = []
    for job in jobs:
        try:
            job.result(timeout=60)
        except Exception as err:
            failures.append(str(err))
    assert failures == []


def test_app_with_corrupt_run_files_serves_and_says_what_is_wrong(trained_run, tmp_path):
    folder = Path(shutil.copytree(trained_run, tmp_path / "run"))
    history = (folder / artifacts.HISTORY_FILE).read_text()
    (folder / artifacts.HISTORY_FILE).write_text(history[: len(history) // 2])  # cut short
    (folder / artifacts.RESULTS_FILE).write_text(json.dumps({  # parses, but holds the wrong kinds of values
        "label_names": ["negative", "positive"], "scores": {"test": {"accuracy": "high"}},
        "confusion_matrices": {"test": [[1, 2, 3]]}}))
    demo, url = _launch(str(folder))
    try:
        client = Client(url, verbose=False)
        assert client.predict("great film", api_name="/classify")[0]["label"] in ("negative", "positive")
        history_table, _, _, confusion, summary = client.predict(api_name="/metrics")
        assert history_table["data"] == [] and confusion["data"] in ([], [[]])
        assert "`epoch_history.json` could not be read: JSONDecodeError" in summary
        assert "`results.json`: its confusion matrix could not be shown" in summary
        assert "`results.json`, `run_config.yaml` or `README.md` holds values the summary could not show" in summary
    finally:
        demo.close()


def test_load_run_names_each_unreadable_run_file(trained_run, tmp_path):
    folder = Path(shutil.copytree(trained_run, tmp_path / "run"))
    (folder / artifacts.RESULTS_FILE).write_text('{"scores": {"test": {"accu')
    (folder / artifacts.CONFIG_FILE).write_text("training: [unclosed\n")
    (folder / artifacts.CARD_FILE).write_text("---\nbase_model: [\n---\n# card\n")
    (folder / artifacts.HISTORY_FILE).write_text('{"epoch": 1}')
    run = load_served_model(str(folder))
    assert run.classifier is not None and run.problem is None
    problems = "\n".join(run.file_problems)
    assert "`results.json` could not be read: JSONDecodeError" in problems
    assert "`run_config.yaml` could not be read: " in problems and "`README.md` could not be read: " in problems
    assert "`epoch_history.json` holds dict data where a list of rows was expected" in problems
    *_, summary = metrics_view(run)
    shown = (artifacts.HISTORY_FILE, artifacts.RESULTS_FILE, artifacts.CONFIG_FILE, artifacts.CARD_FILE)
    assert all(f"`{name}`" in summary for name in shown)
    app.build_demo(run)  # the page builds


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None and os.environ.get("CI") != "true",
                    reason="needs Debian's chromium (./setup.sh --dev installs it; CI requires it)")
def test_browser_classifies_and_shows_metrics_plot(local_app, tmp_path):
    """Desktop and phone widths: the prediction, the word attributions, the metrics; at 400 px the two plots stack
    and the mistakes table shows its label, prediction and confidence columns without scrolling sideways
    (checked by element boxes). Screenshots of each tab at both widths go to tmp_path."""
    from playwright.sync_api import sync_playwright

    assert _chromium(), "chromium is missing: ./setup.sh --dev installs it"
    _, _, url = local_app
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=_chromium(),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        for width in (1280, 400):
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(url)
            assert "Sorts a review into one of 2 classes" in page.locator("#model-line").inner_text()
            page.get_by_label("Review").first.fill("the film was great and loved it")
            page.get_by_role("button", name="Classify", exact=True).click()
            predicted = page.locator('[data-testid="label-output-value"]')
            predicted.wait_for(timeout=30_000)
            assert predicted.inner_text().strip() in ("positive", "negative")
            page.locator("#attributions").get_by_text("great").first.wait_for(timeout=30_000)
            page.screenshot(path=str(tmp_path / f"classify-{width}.png"), full_page=True)

            page.get_by_role("tab", name="Batch").click()
            page.get_by_text("Upload a CSV").first.wait_for(timeout=30_000)
            page.screenshot(path=str(tmp_path / f"batch-{width}.png"), full_page=True)

            page.get_by_role("tab", name="Training metrics").click()
            plots = [page.locator(f"#{name}") for name in ("loss-plot", "score-plot")]
            for plot in plots:
                plot.wait_for(timeout=30_000)
                plot.locator("canvas, svg").first.wait_for(timeout=30_000)
            assert page.get_by_text("Per-epoch history").count() >= 1
            loss, score = (plot.bounding_box() for plot in plots)
            if width == 400:  # stacked, each as wide as the screen allows
                assert score["y"] >= loss["y"] + loss["height"] - 1 and loss["width"] <= width
            else:  # side by side
                assert score["y"] == pytest.approx(loss["y"], abs=2) and score["x"] >= loss["x"] + loss["width"] - 1
            mistakes = page.locator("#mistakes")
            mistakes.scroll_into_view_if_needed()
            header = mistakes.get_by_text("confidence", exact=True).first
            header.wait_for(timeout=30_000)
            box = header.bounding_box()
            assert box["x"] + box["width"] <= width, f"the confidence column is off screen at {width} px"
            page.screenshot(path=str(tmp_path / f"metrics-{width}.png"), full_page=True)
            page.close()
        browser.close()


# --- evaluations and mistakes; the pinned revision ----------------------------------------------


def test_evaluations_endpoint_lists_the_card_evaluations_and_the_surest_mistakes(local_app):
    client, folder, _ = local_app
    evaluations, mistakes, note = client.predict(api_name="/evaluations")
    assert evaluations["headers"][:3] == ["dataset", "split", "accuracy"]
    results = artifacts.read_json(folder, artifacts.RESULTS_FILE)
    rows = {row[1]: row for row in evaluations["data"]}
    assert set(rows) == {"validation", "test"}
    assert rows["test"][2] == pytest.approx(results["scores"]["test"]["accuracy"], abs=1e-4)
    # the short columns first, so that a narrow screen shows them without scrolling sideways
    assert mistakes["headers"] == ["true label", "predicted", "confidence", "review"]
    matrix = results["confusion_matrices"]["test"]
    wrong = matrix[0][1] + matrix[1][0]
    assert len(mistakes["data"]) == min(wrong, MISTAKES_SHOWN) and f"**{wrong:,} of 32** test reviews" in note
    assert all(row[0] != row[1] for row in mistakes["data"])
    confidences = [row[2] for row in mistakes["data"]]
    assert confidences == sorted(confidences, reverse=True)


def test_most_confident_mistakes_puts_the_surest_wrong_prediction_first():
    mistakes = most_confident_mistakes(["a", "b", "c", "d"], ["pos", "pos", "neg", "neg"], ["neg", "pos", "pos", "pos"],
                                       [0.6, 0.99, 0.95, 0.6])
    assert [(m["text"], m["confidence"]) for m in mistakes] == [("c", 0.95), ("a", 0.6), ("d", 0.6)]
    assert mistakes[0] == {"text": "c", "label": "neg", "predicted_label": "pos", "confidence": 0.95}
    assert [m["text"] for m in most_confident_mistakes(["a", "b", "c", "d"], ["pos", "pos", "neg", "neg"],
                                                       ["neg", "pos", "pos", "pos"], [0.6, 0.99, 0.95, 0.6], 1)] == ["c"]


def test_app_serves_the_model_revision_it_is_pinned_to(hub_app, trained_run, tmp_path, monkeypatch):
    # hub_app's fake Hub is up for this module
    hub.push_folder(trained_run, "me/pinned", TOKEN)
    first = hub.api(TOKEN).model_info("me/pinned").sha
    moved = Path(shutil.copytree(trained_run, tmp_path / "v2"))
    config = json.loads((moved / "config.json").read_text())
    config["id2label"], config["label2id"] = {"0": "bad", "1": "good"}, {"bad": 0, "good": 1}
    (moved / "config.json").write_text(json.dumps(config))
    hub.push_folder(moved, "me/pinned", TOKEN)
    monkeypatch.setenv("MODEL_REVISION", first)
    args = app.parse_args(["--model_id", "me/pinned"])
    pinned = load_served_model(args.model_id, revision=args.model_revision)
    assert pinned.classifier.label_names == ["negative", "positive"] and pinned.revision == first
    assert pinned.history and pinned.test_predictions  # the run's files, of that commit too
    assert load_served_model("me/pinned").classifier.label_names == ["bad", "good"]  # main moved on


def test_load_run_says_an_empty_run_file_is_empty(trained_run, tmp_path):
    folder = Path(shutil.copytree(trained_run, tmp_path / "run"))
    (folder / artifacts.HISTORY_FILE).write_text("")
    assert "`epoch_history.json` could not be read: ValueError: the file is empty" in "\n".join(
        load_served_model(str(folder)).file_problems)


def test_read_batch_file_picks_a_named_review_column_when_none_is_chosen(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("stars,review\n5,great film\n")
    batch = serving.read_batch_file(str(path), None)
    assert (batch.texts, batch.column, batch.other_columns) == (["great film"], "review", {"stars": ["5"]})


def test_read_batch_file_picks_the_longest_text_column_and_says_so(tmp_path):
    """`id,comment,stars`: no column named like text; the ids are numbers and the comments are the longest texts."""
    path = tmp_path / "export.csv"
    path.write_text('id,comment,stars,tag\n1,"great film, loved it",5,ok\n2,"awful plot",1,meh\n')
    batch = serving.read_batch_file(str(path), None)
    assert batch.column == "comment" and batch.texts == ["great film, loved it", "awful plot"]
    assert batch.other_columns == {"id": ["1", "2"], "stars": ["5", "1"], "tag": ["ok", "meh"]}
    assert "classified 'comment', the column with the longest texts" in batch.note
    assert app.file_columns(str(path)).value == "comment"  # the dropdown shows the same pick on upload


def test_classify_batch_reads_a_review_longer_than_the_csv_modules_field_limit(local_app, tmp_path):
    client, _, _ = local_app
    path = tmp_path / "long.csv"
    path.write_text('id,text\n1,"' + "great film " * 20_000 + '"\n2,awful\n')  # 220,000 characters in one field
    table, _, _ = client.predict(handle_file(str(path)), "text", api_name="/classify_batch")
    assert [row[0] for row in table["data"]] == ["1", "2"]
    assert table["data"][0][table["headers"].index("truncated")] is True


def test_explain_endpoint_returns_one_attribution_per_word(local_app):
    client, folder, _ = local_app
    text = "the film was great and loved it"
    words, note = client.predict(text, api_name="/explain")
    marked = [(item["token"], item["class_or_confidence"]) for item in words]
    assert "".join(token for token, _ in marked) == text
    assert [token for token, value in marked if value is not None] == text.split()
    assert all(-1 <= value <= 1 for _, value in marked if value is not None)
    assert max(abs(value) for _, value in marked if value is not None) == pytest.approx(1.0)
    assert note.startswith("Each word left out in turn")
    with pytest.raises(Exception, match="Type or paste a review"):
        client.predict("  ", api_name="/explain")


# --- the demo as a tool for agents (MCP) -----------------------------------------------------------------

MCP_TOOLS = {"classify", "explain", "classify_batch", "metrics", "hp_search", "evaluations"}


@pytest.fixture(scope="module")
def mcp_app(trained_run):
    """The demo on the trained run with its MCP server, and the server's streamable HTTP address."""
    demo, url = _launch(str(trained_run), mcp_server=True)
    yield url + "gradio_api/mcp/", trained_run
    demo.close()


def _mcp(url: str, work):
    """`work(session)` in a session of the MCP Python SDK's client, over streamable HTTP."""
    import asyncio

    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def run():
        async with streamable_http_client(url) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await work(session)

    return asyncio.run(run())


def _tool_answer(result) -> list:
    """A tool's outputs: gradio sends them as one text, the Python form of the list of the endpoint's outputs."""
    import ast

    assert not result.isError, result.content
    return ast.literal_eval(result.content[0].text)


def test_mcp_server_lists_each_endpoint_as_a_tool_that_says_what_it_returns(mcp_app):
    url, _ = mcp_app

    async def list_tools(session):
        return (await session.list_tools()).tools

    tools = {tool.name: tool for tool in _mcp(url, list_tools)}
    assert set(tools) == MCP_TOOLS
    classify = tools["classify"]
    assert classify.description.startswith("Classify a review with the fine-tuned model")
    assert "The model's classes: negative, positive." in classify.description
    assert 'Returns: label: {"label": the prediction, "confidences"' in classify.description
    assert classify.inputSchema["properties"] == {
        "review": {"type": "string", "description": "the review's text (at most 20,000 characters)"}}
    assert classify.inputSchema["required"] == ["review"]
    assert "Returns: attributions:" in tools["explain"].description
    assert tools["classify_batch"].inputSchema["properties"]["column"]["type"] == "string"
    assert "enum" not in tools["classify_batch"].inputSchema["properties"]["column"]  # any column name is taken
    for name in MCP_TOOLS:
        assert "Returns:" in tools[name].description, name


def test_mcp_classify_tool_answers_with_the_models_label(mcp_app):
    from finetune.inference import ReviewClassifier

    url, folder = mcp_app
    text = "the film was great and wonderful, loved it"

    async def classify(session):
        return await session.call_tool("classify", {"review": text})

    label, note = _tool_answer(_mcp(url, classify))
    expected = ReviewClassifier(folder).predict_one(text)

    async def classify_blank(session):
        return await session.call_tool("classify", {"review": "   "})

    refused = _mcp(url, classify_blank)  # the page's refusal, as an error result
    assert refused.isError and "Type or paste a review first." in refused.content[0].text
    assert label["label"] == expected.label
    scores = {c["label"]: c["confidence"] for c in label["confidences"]}
    assert scores == pytest.approx(expected.scores, abs=1e-4)
    assert note.startswith("Read ") and "tokens" in note


def test_mcp_classify_batch_tool_reads_a_workbook_sent_as_base64(mcp_app, tmp_path):
    import base64

    import openpyxl

    url, folder = mcp_app
    workbook = openpyxl.Workbook()
    for row in (["id", "review"], [1, "great superb film"], [2, "awful dull plot"]):
        workbook.active.append(row)
    workbook.save(tmp_path / "reviews.xlsx")
    mime = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    data = f"data:{mime};base64," + base64.b64encode((tmp_path / "reviews.xlsx").read_bytes()).decode()

    async def classify_batch(session):
        return await session.call_tool("classify_batch", {"file_path": data, "column": ""})

    table, _, note = _tool_answer(_mcp(url, classify_batch))
    assert table["headers"][:3] == ["id", "review", "label"]
    assert [row[1] for row in table["data"]] == ["great superb film", "awful dull plot"]
    assert note == "Classified column 'review'. 2 reviews."


@pytest.mark.parametrize("flag, environment, enabled", [
    (None, {}, False),  # locally: off
    (None, {"SPACE_ID": "me/reviews-demo"}, True),  # in a Space: on
    (None, {"SPACE_ID": "me/reviews-demo", "GRADIO_MCP_SERVER": "false"}, False),  # gradio's variable wins
    (None, {"GRADIO_MCP_SERVER": "True"}, True),
    (False, {"SPACE_ID": "me/reviews-demo"}, False),  # and the flag over both
    (True, {}, True),
])
def test_mcp_server_is_on_in_a_space_and_off_locally_unless_asked(monkeypatch, flag, environment, enabled):
    from finetune.agent_tools import mcp_server_enabled

    for name in ("SPACE_ID", "GRADIO_MCP_SERVER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert mcp_server_enabled(flag) is enabled
    argv = [] if flag is None else ["--mcp_server" if flag else "--no-mcp_server"]
    assert app.parse_args(argv).mcp_server is flag


def test_mcp_server_asked_for_without_the_mcp_package_says_what_to_install(monkeypatch):
    import importlib.util

    from finetune.agent_tools import mcp_server_enabled

    monkeypatch.setenv("SPACE_ID", "me/reviews-demo")
    monkeypatch.delenv("GRADIO_MCP_SERVER", raising=False)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mcp" else find_spec(name, *a))
    assert mcp_server_enabled(None) is False  # a Space without it: off, quietly
    with pytest.raises(SystemExit, match=r"--mcp_server needs the mcp package, which is not installed. Install it as "
                                         r"requirements.txt pins it \(pip install -r requirements.txt\)"):
        mcp_server_enabled(True)


def test_review_tools_of_a_two_field_model_take_one_parameter_per_column():
    from finetune import agent_tools

    args = agent_tools.review_args(["Review title", "body"], "unused")
    assert list(args) == ["Review_title", "body"]
    tool = agent_tools.tool(lambda title, body: f"{title}|{body}", "classify", "Classify.", args, ["label: the class"])
    assert tool("a", "b") == "a|b" and list(inspect.signature(tool).parameters) == ["Review_title", "body"]
    assert tool.__doc__.splitlines()[3] == "    Review_title: the review's 'Review title' field (1 of 2, as in training)"


def test_app_on_a_busy_port_says_so_in_one_error_line(tmp_path):
    import socket
    import subprocess

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run([sys.executable, "app.py", "--port", str(port), "--model_id", str(tmp_path / "none")],
                              cwd=Path(app.__file__).parent, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert f"error: cannot serve on 127.0.0.1:{port}" in done.stderr and "--port" in done.stderr
    assert "Traceback" not in done.stderr
