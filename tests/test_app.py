"""The Gradio demo, launched on 127.0.0.1 and driven through gradio_client (and a real browser)."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FAKE_HUB_PORT, REPO_ROOT, free_port
from fake_hub import FakeHub
from gradio_client import Client, handle_file

import app
from finetune import artifacts, hub

TOKEN = "hf_fakeTokenForAppTests0123456789"


def _launch(model_id: str):
    demo = app.build_demo(app.load_run(model_id))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    return demo, f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def local_app(trained_run):
    demo, url = _launch(str(trained_run))
    yield Client(url, verbose=False), trained_run, url
    demo.close()


@pytest.fixture(scope="module")
def hub_app(trained_run):
    fake = FakeHub(FAKE_HUB_PORT, tokens={TOKEN}).start()
    hub.push_folder(trained_run, "me/app-model", TOKEN)
    demo, url = _launch("me/app-model")
    yield Client(url, verbose=False), trained_run
    demo.close()
    fake.stop()


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
    assert "only its beginning was read" in answer[1]


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
    table, download = client.predict(handle_file(str(path)), "review", api_name="/classify_batch")
    assert table["headers"][:3] == ["review", "label", "confidence"]
    assert [row[0] for row in table["data"]] == ["great superb film", "awful dull plot", "the cast was brilliant"]
    assert {row[1] for row in table["data"]} <= {"negative", "positive"}
    downloaded = Path(download).read_text().splitlines()
    assert downloaded[0].startswith("review,label,confidence") and len(downloaded) == 4


def test_classify_batch_from_text_file(local_app, tmp_path):
    client, _, _ = local_app
    path = tmp_path / "reviews.txt"
    path.write_text("great film\n\nawful film\n")
    table, _ = client.predict(handle_file(str(path)), "(one review per line)", api_name="/classify_batch")
    assert len(table["data"]) == 2


@pytest.mark.parametrize(
    "name, content, column, message",
    [
        ("reviews.csv", b"id,review\n1,great\n", "text", "Column 'text' is not in the file. Its columns: id, review"),
        ("garbled.txt", bytes(range(128, 256)) * 10, None, "not UTF-8 text"),
        ("binary.txt", b"\x00\x01\x02great\x00", None, "looks binary"),
        ("many.txt", b"great\n" * 1001, None, "the limit is 1,000 per request"),
        ("big.txt", b"a" * (2 * 1024 * 1024 + 1), None, "the limit is 2 MB"),
        ("empty.txt", b"\n\n", None, "holds no reviews"),
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
    run = app.load_run(str(tmp_path / "nothing-here"))
    assert run.classifier is None
    assert "accelerate launch finetune/train.py" in run.problem and "MODEL_ID" in run.problem
    with pytest.raises(Exception, match="accelerate launch finetune/train.py"):
        app.classify(run, "great")


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
    finally:
        process.terminate()
        process.wait(timeout=30)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None and os.environ.get("CI") != "true",
                    reason="needs Debian's chromium (./setup.sh --dev installs it; CI requires it)")
def test_browser_classifies_and_shows_metrics_plot(local_app, tmp_path):
    from playwright.sync_api import sync_playwright

    assert _chromium(), "chromium is missing: ./setup.sh --dev installs it"
    _, _, url = local_app
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=_chromium(),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        page = browser.new_page()
        page.goto(url)
        page.get_by_label("Review").first.fill("the film was great and loved it")
        page.get_by_role("button", name="Classify", exact=True).click()
        predicted = page.locator('[data-testid="label-output-value"]')
        predicted.wait_for(timeout=30_000)
        assert predicted.inner_text().strip() in ("positive", "negative")
        page.screenshot(path=str(tmp_path / "classify.png"))

        page.get_by_role("tab", name="Training metrics").click()
        plot = page.locator("#loss-plot")
        plot.wait_for(timeout=30_000)
        plot.locator("canvas, svg").first.wait_for(timeout=30_000)
        assert page.get_by_text("Per-epoch history").count() >= 1
        page.screenshot(path=str(tmp_path / "metrics.png"), full_page=True)
        browser.close()
