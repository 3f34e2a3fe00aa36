"""A new user's flows through the console in a real Chromium, one per service, on generated
data, against the integration tier's Serve application. Each flow is timed (``flow_timer``)
and leaves screenshots in ``test-artifacts/screenshots``."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from percept.cli import main as cli
from tests.integration.browser.conftest import Console
from tests.unit.search.conftest import Site, serve_site
from tests.unit.search.synthetic import composite, png_bytes

pytestmark = [pytest.mark.integration, pytest.mark.browser]

SLOW = 300_000  # ms: a model flow on two shared cores


def _save(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def test_sign_in_create_account_and_plain_errors(console: Console, flow_timer: Any) -> None:
    page = console.page
    with flow_timer("sign_in"):
        console.open("reading", expect="signin")  # a service page sends a visitor to sign in first
        page.get_by_role("heading", name="Sign in").wait_for()
        page.get_by_label("User name").fill("nobody-here")
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Sign in").click()
        alert = page.get_by_role("alert")
        alert.wait_for()
        assert "do not match an account" in alert.inner_text()
        console.shot("wrong-password")
        name = console.sign_up()
        page.get_by_role("heading", name="Reading").wait_for()  # back where the visitor wanted to go
        page.get_by_role("button", name="Sign out").click()
        page.get_by_label("User name").fill(name)
        page.get_by_label("Password").fill("correct horse")
        page.keyboard.press("Enter")  # the form works from the keyboard
        page.get_by_text(f"Signed in as {name}").wait_for()
    console.shot("signed-in")
    assert console.errors == []


def test_the_last_page_chosen_is_the_page_shown(console: Console) -> None:
    """A page whose code arrives late (a slow link, a sign-in moving on to its page) must not
    replace the page the user chose after it."""
    page = console.page
    console.open("")
    held: list[Any] = []
    page.route("**/js/pages/status.js", lambda route: held.append(route))  # its code is held back
    with page.expect_request("**/js/pages/status.js"):
        page.evaluate("location.hash = '#/status'")
    for _ in range(100):  # the route handler runs while Playwright waits
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the status page's code was not requested"
    page.evaluate("location.hash = '#/tagger'")
    page.wait_for_selector('main[data-page="tagger"] h1')
    with page.expect_response("**/js/pages/status.js"):
        held[0].continue_()  # now the overtaken page's code arrives
    # the overtaken route has its module now: give it the moment it would need to render
    assert page.evaluate("import('/ui/static/js/pages/status.js').then(() => true)")
    page.wait_for_timeout(300)
    assert page.locator("main h1").all_inner_texts() == ["Tagger"]
    assert page.title() == "Tagger · Percept"
    assert console.errors == []


@pytest.mark.parametrize("console", ["phone"], indirect=True)
def test_phone_menu_and_home(console: Console) -> None:
    page = console.page
    console.open("")
    nav = page.locator("#nav")
    assert not nav.is_visible()
    page.get_by_role("button", name="Menu").click()
    assert nav.is_visible()
    console.shot("menu-open")
    page.get_by_role("link", name="Status").first.click()
    page.get_by_role("heading", name="Status").wait_for()
    page.locator("#deployments tbody tr").first.wait_for()
    assert not nav.is_visible()  # choosing a page folds the menu
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1, f"the status page scrolls sideways on a phone ({width}px)"
    console.shot("status")


def test_reading_flow(console: Console, flow_timer: Any, tmp_path: Path) -> None:
    from tests.synthetic.reading import espeak_available, render_page, speak

    if not espeak_available():
        pytest.skip("espeak-ng is needed to generate the recording")
    page = console.page
    words = "the little dog ran to the park and saw a big green tree".split()
    page_png = tmp_path / "page.png"
    page_png.write_bytes(render_page([" ".join(words[:7]), " ".join(words[7:])]))
    said = list(words)
    said[2] = "cat"  # one substitution: "dog" read as "cat"
    recording = tmp_path / "reading.wav"
    speak(" ".join(said), speed=120).export(recording, format="wav")

    console.sign_up()
    with flow_timer("reading"):
        console.open("reading")
        page.get_by_label("Page photo").set_input_files(str(page_png))
        page.get_by_label("Recording", exact=True).set_input_files(str(recording))
        page.locator("summary", has_text="Models").click()
        page.get_by_label("OCR model").select_option("tesseract")
        console.shot("form")
        page.get_by_role("button", name="Assess the reading").click()
        page.get_by_text("Assessment ready.").wait_for(timeout=SLOW)
    console.shot("report")
    summary = page.locator(".stats").inner_text()
    assert "accuracy" in summary and "words correct per minute" in summary
    words_shown = page.locator(".words .word")
    assert words_shown.count() >= len(words)
    marked = page.locator('.words .word:not([data-status="correct"])')
    assert marked.count() >= 1, "the substituted word is not marked"
    assert page.locator(".page-view img").is_visible()
    assert page.locator(".page-view .box").count() >= 1  # misread words boxed on the page photo
    # click a word: its stretch of the recording plays
    page.locator('.words .word[data-status="correct"]').first.click()
    page.get_by_text(re.compile(r"^Playing “")).wait_for()
    page.wait_for_function("document.querySelector('audio').currentTime > 0")
    assert console.errors == []


def test_reading_typed_text_and_a_browser_recording(console: Console, flow_timer: Any) -> None:
    page = console.page
    console.sign_up()
    with flow_timer("reading_recorded"):
        console.open("reading")
        page.get_by_label("Type the text").check()
        page.get_by_label("Text", exact=True).fill("the little dog ran to the park")
        page.get_by_role("button", name="Record with the microphone").click()
        page.get_by_text("Recording… read the page aloud").wait_for()
        page.wait_for_timeout(2500)
        page.get_by_role("button", name="Stop recording").click()
        page.get_by_text(re.compile(r"^Recorded \d+ KB")).wait_for()
        page.get_by_role("button", name="Assess the reading").click()
        page.get_by_text("Assessment ready.").wait_for(timeout=SLOW)
    console.shot("report")
    # the fake microphone only beeps: every word of the text is reported, none of them read
    words = page.locator(".words .word")
    assert words.count() >= 7
    assert page.locator('.words .word[data-status="omission"]').count() >= 1
    assert page.locator(".page-view").count() == 0  # typed text: no page photo
    assert console.errors == []


def _operator(app: Any, *argv: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli(["--data-dir", str(app.root / "data"), *argv]) == 0
    return out.getvalue()


def test_inspection_flow(console: Console, flow_timer: Any, percept_app: Any, tmp_path: Path) -> None:
    from tests.synthetic.inspection import add_defect, good_crops

    client_id, secret = _operator(percept_app, "clients", "create", "Console line").split()
    license_file = tmp_path / "line.key"
    _operator(percept_app, "license", "issue", client_id, "-o", str(license_file))
    rng = np.random.default_rng(5)
    goods = good_crops("brick", 12, 128, rng)
    good_files = [str(_save(tmp_path / "good" / f"good{i}.png", img)) for i, img in enumerate(goods[:10])]
    defect = [add_defect(img, kind, rng)[0] for img, kind in zip(goods[10:], ("scratch", "stain"), strict=True)]
    check_files = [str(_save(tmp_path / "check" / f"part{i}.png", img)) for i, img in enumerate(defect)]

    page = console.page
    with flow_timer("inspection"):
        console.open("inspection")
        page.get_by_label("Client id").fill(client_id)
        page.get_by_label("Client secret").fill(secret)
        page.get_by_label("License file").set_input_files(str(license_file))
        page.get_by_role("button", name="Connect").click()
        page.get_by_text(f"Connected as client {client_id}").wait_for()
        page.get_by_label("Good products").set_input_files(good_files)
        page.get_by_role("button", name="Upload training images").click()
        page.get_by_text("10 good and 0 defect images uploaded.").wait_for()
        page.get_by_label("Algorithm").select_option("OC")
        page.get_by_role("button", name="Train", exact=True).click()
        status = page.locator("#model-status")
        status.filter(has_text="active").wait_for(timeout=SLOW)
        console.shot("trained")
        assert re.search(r"creating → (running → )?active", status.inner_text()), status.inner_text()
        page.get_by_label("Images to check").set_input_files(check_files)
        page.get_by_role("button", name="Check these images").click()
        page.locator("#verdicts article").nth(1).wait_for(timeout=SLOW)
        page.wait_for_function("[...document.querySelectorAll('#verdicts img')].every(i => i.complete && i.naturalWidth > 0)")
    console.shot("verdicts")
    verdicts = page.locator("#verdicts")
    assert verdicts.locator("article").count() == 2
    assert verdicts.get_by_text("NG — defect found").count() == 2
    assert verdicts.get_by_alt_text(re.compile("anomaly heatmap")).count() == 2
    assert verdicts.locator(".det").count() >= 2  # boxes drawn over the photos
    assert console.errors == []


def test_correction_flow(console: Console, flow_timer: Any, tmp_path: Path) -> None:
    from tests.synthetic.correction import make_digits_dataset

    folder = tmp_path / "digits"  # on the user's computer: uploaded through the browser
    truth = make_digits_dataset(folder, per_class=20, classes=[0, 1, 3], flip_fraction=0.1, merge=None,
                                n_blur=2, n_dark=2, n_bright=0)
    page = console.page
    console.sign_up()
    with flow_timer("correction"):
        console.open("correction")
        page.get_by_label("Or upload a dataset folder from this computer").set_input_files(folder)
        page.get_by_text(f"{len(truth.paths)} images uploaded to ").wait_for()
        assert page.get_by_label("Dataset folder", exact=True).input_value().endswith("/digits")
        console.shot("form")
        page.get_by_role("button", name="Start the job").click()
        page.locator(".progress").wait_for()
        page.get_by_text("The job is done.").wait_for(timeout=SLOW)
    console.shot("report")
    assert page.locator("progress").get_attribute("value") == "100"
    findings = page.locator("#findings").inner_text()
    assert "diagnose_mislabeled_images" in findings and "correct_image_blur" in findings
    assert page.locator("svg.scatter circle").count() == len(truth.paths)
    flagged = page.locator("#flagged figure")
    assert flagged.count() >= 1
    flagged_ids = {t.split(":")[0] for t in flagged.locator("figcaption").all_inner_texts()}
    assert flagged_ids & truth.flipped, (flagged_ids, truth.flipped)
    pairs = page.locator("#fixes .pair")
    assert pairs.count() >= 1  # before / after of a fixed (blurred or dark) image
    page.wait_for_function("[...document.querySelectorAll('#fixes img')].every(i => i.complete && i.naturalWidth > 0)")
    assert console.errors == []


@pytest.fixture
def shop() -> Iterator[Site]:
    site = Site()
    yield from serve_site(site)


def test_search_flow(console: Console, flow_timer: Any, shop: Site, tmp_path: Path) -> None:
    colours = [(220, 40, 40), (30, 200, 210), (40, 60, 210), (240, 200, 30), (40, 170, 60), (150, 60, 190)]
    tags = []
    for i, colour in enumerate(colours):
        for j, shape in enumerate(("ellipse", "rectangle")):
            image, _ = composite(shape, colour, seed=10 * i + j)
            shop.add(f"/img/p{i}{j}.png", png_bytes(image), "image/png")
            tags.append(f'<img src="/img/p{i}{j}.png" alt="product {i}{j}">')
    shop.add("/", f"<html><body><h1>Shop</h1>{''.join(tags)}</body></html>")
    query = _save(tmp_path / "query.png", composite("ellipse", (220, 40, 40), seed=99)[0])

    page = console.page
    console.sign_up()
    with flow_timer("search"):
        console.open("search")
        page.get_by_label("Web page").fill(shop.url + "/")
        page.get_by_role("button", name="Collect images").click()
        collected = page.locator("#collected")
        collected.filter(has_text="prepared for similarity search").wait_for(timeout=SLOW)
        text = collected.inner_text()
        assert "12 new images stored" in text, text
        if "efficientnet" in text:  # a fresh install: the stand-in says so, and where ResNet34 goes
            assert "ResNet34 weights are not installed" in text
        page.get_by_label("By an image").set_input_files(str(query))
        page.get_by_role("button", name="Find similar images").click()
        page.locator("#results figure").nth(11).wait_for(timeout=SLOW)
        page.wait_for_function("[...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth > 0)")
    console.shot("by-image")
    head = page.locator("#results-head").inner_text()
    assert head.startswith("12 images look most like yours with "), head
    scores = [float(t.split()[-1]) for t in page.locator("#results figcaption").all_inner_texts()]
    assert scores == sorted(scores, reverse=True) and -1 <= scores[-1] <= scores[0] <= 1
    # by colour: the same red
    page.get_by_label("By a colour").fill("#dc2828")
    page.get_by_role("button", name="Find by colour").click()
    page.get_by_text("are closest to #dc2828").wait_for(timeout=SLOW)
    console.shot("by-colour")
    distances = [float(t.split()[-1]) for t in page.locator("#results figcaption").all_inner_texts()]
    assert len(distances) == 12 and distances == sorted(distances)  # CIEDE2000: closest first
    # by text: no CLIP weights on a fresh install -> said in plain words (with them: results)
    page.get_by_label("By a text").fill("a red dress")
    page.get_by_role("button", name="Find by text").click()
    if "not available here (no CLIP weights" in text:
        alert = page.get_by_role("alert")
        alert.wait_for(timeout=SLOW)
        assert "CLIP" in alert.inner_text()
    else:  # another test put (tiny) CLIP weights into this app's models directory
        page.get_by_text("12 images match “a red dress”").wait_for(timeout=SLOW)
    console.shot("by-text")
    assert console.errors == []


def test_tagger_flow(console: Console, flow_timer: Any, tmp_path: Path) -> None:
    from skimage import data as images

    try:
        from tests.synthetic.tagger import make_video
    except ImportError:
        from percept.tagger.synthetic import make_video
    cat = _save(tmp_path / "cat.png", images.chelsea())
    video = tmp_path / "clip.mp4"
    video.write_bytes(make_video([(images.chelsea(), 1.5), (images.coffee(), 1.5)], size=(160, 120)))

    page = console.page
    with flow_timer("tagger_image"):
        console.open("tagger")
        page.get_by_label("Image or video").set_input_files(str(cat))  # choosing a file tags it
        page.locator("#labels tbody tr, [role=alert]").first.wait_for(timeout=SLOW)
        assert not page.get_by_role("alert").count(), page.get_by_role("alert").inner_text()
    console.shot("image")
    labels = page.locator("#labels tbody tr td:first-child").all_inner_texts()
    assert len(labels) == 5 and any("cat" in label for label in labels), labels
    with flow_timer("tagger_video"):
        page.get_by_label("Image or video").set_input_files(str(video))
        page.locator("h2:has-text('Labels over the video'), [role=alert]").first.wait_for(timeout=SLOW)
        assert not page.get_by_role("alert").count(), page.get_by_role("alert").inner_text()
    console.shot("video")
    assert page.locator("#labels .timeline").count() == 5
    assert page.locator("#labels .timeline .tick").count() >= 2
    assert console.errors == []


def test_status_page_and_dashboard_link(console: Console, flow_timer: Any, percept_app: Any) -> None:
    import httpx

    health = httpx.get(f"{percept_app.url}/platform/health", timeout=60).json()
    page = console.page
    with flow_timer("status"):
        console.open("status")
        page.locator("#deployments tbody tr").first.wait_for()
    console.shot("status")
    assert page.locator("#deployments tbody tr").count() == len(health["deployments"])
    link = page.get_by_role("link", name="Ray dashboard")
    assert link.get_attribute("href") == "http://127.0.0.1:8265"
    resnet = health["deployments"].get("search_resnet")
    if resnet and resnet.get("fallback"):  # the stand-in is shown, with where the weights go
        row = page.locator("#deployments tbody tr", has_text="search_resnet")
        assert "fallback" in row.inner_text() and "resnet-34" in row.inner_text()
    assert console.errors == []


def test_docs_and_redoc_render_offline(console: Console, flow_timer: Any, percept_app: Any) -> None:
    page = console.page
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(r.url))
    with flow_timer("docs"):
        page.goto(f"{console.url}/docs")
        page.locator(".opblock").nth(20).wait_for()
    console.shot("swagger", full_page=False)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/v1/auth/token" in paths and "/ui/api/config" in paths
    served = {"tagger": "/process", "search": "/get_top_24_resnet_similar", "correction": "/correction/jobs"}
    for service, path in served.items():
        assert (path in paths) == (service in percept_app.args["services"]), path
    page.goto(f"{console.url}/redoc")
    page.get_by_text("/v1/auth/token").first.wait_for()
    console.shot("redoc", full_page=False)
    assert page.locator("[data-section-id^='operation/']").count() > 20
    # only ReDoc's "API docs by Redocly" logo is fetched from the internet (and may fail offline)
    assert [u for u in failed if "redoc.ly" not in u] == []
