"""The web pages in a real browser: headless Chromium (Debian's) driven by Playwright for
Python. One browser for the whole module; each test opens its own page and checks that the
page logged no console error. Screenshots of each page go to $FAKESTUDIO_WEB_SHOTS (docs/
uses them) or the test's temporary folder, as artefacts."""

from __future__ import annotations

import base64
import json

import pytest

from tests.web_support import (
    Console,
    chromium,
    labelled_png,
    playwright_available,
    shots_dir,
    stripped_copy,
    web_server,
)

if not playwright_available():
    pytest.skip(
        "needs the playwright package and Debian's chromium (scripts/test.sh installs it)",
        allow_module_level=True,
    )

from playwright.sync_api import expect  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def site():
    with web_server() as (url, cfg):
        yield url, cfg


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    d = tmp_path_factory.mktemp("web-pages")
    fake = labelled_png(d, seed=31, name="the fake")
    copy = stripped_copy(fake, d / "uploaded copy.jpg")
    return {"folder": d, "fake": fake, "copy": copy}


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return shots_dir(tmp_path_factory.mktemp("web-shots"))


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    pg.console = Console(pg)
    yield pg
    context.close()


def drop_files(page, selector: str, files: list[tuple[str, bytes, str]]) -> None:
    """Drop files on an element as a user dragging them from the desktop does."""
    payload = [[name, base64.b64encode(data).decode(), mime] for name, data, mime in files]
    dt = page.evaluate_handle(
        """(files) => {
            const dt = new DataTransfer();
            for (const [name, b64, type] of files) {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                dt.items.add(new File([bytes], name, { type }));
            }
            return dt;
        }""",
        payload,
    )
    page.dispatch_event(selector, "dragenter", {"dataTransfer": dt})
    page.dispatch_event(selector, "drop", {"dataTransfer": dt})


def test_verify_page_drop_labelled_and_stripped(page, site, pictures, shots):
    url, _ = site
    page.goto(url + "/")
    fake, copy = pictures["fake"], pictures["copy"]
    drop_files(page, "#drop", [(fake.name, fake.read_bytes(), "image/png")])
    card = page.locator("article.card[data-outcome]").first
    card.wait_for(timeout=60_000)
    assert card.get_attribute("data-outcome") == "labelled-ai"
    assert card.locator(".file-name").inner_text() == fake.name
    assert "AI" in card.locator(".headline").inner_text()
    assert "trust your eyes" in card.locator(".eyes").inner_text().lower()
    assert "found: fakestudio" in card.locator(".gist").nth(1).inner_text()  # the watermarks
    assert "fakestudio" in card.locator("table.grid").text_content()

    # the downloadable JSON is the report
    with page.expect_download() as dl:
        card.locator("button.download-json").click()
    report = json.loads(open(dl.value.path()).read())
    assert report["schema"] == "fakestudio.verify/1" and report["file"] == fake.name
    assert report["verdict"]["outcome"] == "labelled-ai"

    # the stripped copy: no manifest any more, the watermark (or the ledger) still says AI
    drop_files(page, "#drop", [(copy.name, copy.read_bytes(), "image/jpeg")])
    expect(page.locator("article.card[data-outcome]")).to_have_count(2, timeout=60_000)
    newest = page.locator("article.card[data-outcome]").first
    assert newest.locator(".file-name").inner_text() == copy.name
    assert newest.get_attribute("data-outcome") in ("ai-watermark", "recovered")
    assert "absent" in newest.locator("details.section").first.inner_text()
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(shots / "verify.jpg"), type="jpeg", quality=80)
    assert page.console.errors == []


def test_verify_page_shows_hostile_names_as_text(page, site, pictures):
    url, _ = site
    page.goto(url + "/")
    name = "<img src=x onerror=window.pwned=1>.png"
    page.set_input_files(
        "#pick", files=[{"name": name, "mimeType": "image/png", "buffer": b"not an image"}]
    )
    card = page.locator("article.card[data-outcome]").first
    card.wait_for(timeout=60_000)
    assert card.get_attribute("data-outcome") == "unreadable"
    assert card.locator(".file-name").inner_text() == name
    assert page.evaluate("window.pwned") is None
    assert page.locator("main img[src='x']").count() == 0
    # a report whose verdict has a tier (and the new outcome) shows both; one without, neither
    badge = page.evaluate(
        """() => [FS.verdictBadge({outcome: "label-mismatch", tier: "mismatch"}).innerText,
                  FS.verdictBadge({outcome: "labelled-ai"}).querySelectorAll(".tier").length]"""
    )
    assert "Label mismatch" in badge[0] and "tier: mismatch" in badge[0] and badge[1] == 0
    assert page.console.errors == []


def test_compare_page_slider_maps_and_poster(page, site, pictures, shots):
    import httpx

    url, _ = site
    page.goto(url + "/compare")
    page.set_input_files("#pick-a", str(pictures["fake"]))
    page.set_input_files("#pick-b", str(pictures["copy"]))
    page.locator("#result").wait_for(state="visible", timeout=120_000)
    outcomes = page.locator("#verdicts .badge").evaluate_all(
        "(nodes) => nodes.map((n) => n.dataset.outcome)"
    )
    assert outcomes[0] == "labelled-ai" and outcomes[1] in ("ai-watermark", "recovered")
    assert "SSIM" in page.locator("#pixels").inner_text()
    for map_id in ("#map-ssim", "#map-difference", "#map-spectrum-a", "#map-spectrum-b"):
        assert page.locator(map_id).evaluate("(img) => img.complete && img.naturalWidth") > 0

    # the overlay slider, by keyboard: A is shown left of the line, B right of it
    top = page.locator("#overlay-a")
    assert top.evaluate("(n) => n.style.clipPath") == "inset(0px 50% 0px 0px)"
    page.locator("#slider").focus()
    for _ in range(20):
        page.keyboard.press("ArrowLeft")
    assert top.evaluate("(n) => n.style.clipPath") == "inset(0px 70% 0px 0px)"
    page.locator("#slider").fill("90")
    assert top.evaluate("(n) => n.style.clipPath") == "inset(0px 10% 0px 0px)"
    page.locator("#result").scroll_into_view_if_needed()
    page.evaluate("() => window.scrollTo(0, document.getElementById('result').offsetTop - 60)")
    page.screenshot(path=str(shots / "compare.jpg"), type="jpeg", quality=80)

    # the poster leaves through the labeller: verify reads it as labelled AI
    with page.expect_download(timeout=120_000) as dl:
        page.locator("#poster").click()
    poster = open(dl.value.path(), "rb").read()
    r = httpx.post(f"{url}/api/verify", files={"file": ("poster.png", poster)}, timeout=60)
    rep = r.json()
    assert rep["verdict"]["outcome"] == "labelled-ai"
    assert "compositeWithTrainedAlgorithmicMedia" in rep["c2pa"]["digital_source_type"]
    assert page.console.errors == []


@pytest.fixture(scope="module")
def talk_site(tmp_path_factory):
    from tests.web_support import demo_like_talk

    folder = demo_like_talk(tmp_path_factory.mktemp("talk"))
    with web_server(talk_dir=folder) as (url, cfg):
        yield url, cfg


def test_talk_keyboard_and_live_quiz_with_three_phones(browser, talk_site, shots):
    url, cfg = talk_site
    presenter = browser.new_context(viewport={"width": 1280, "height": 800})
    deck = presenter.new_page()
    deck.console = Console(deck)
    deck.goto(url + "/talk")
    kinds = deck.locator(".slide").evaluate_all("(s) => s.map((x) => x.dataset.kind)")
    assert kinds[:2] == ["title", "photos"] and "label" in kinds and "verify-again" in kinds
    assert kinds.count("quiz") == 2 and kinds[-1] == "closing"
    assert deck.locator(".slide:not([hidden])").get_attribute("data-kind") == "title"
    qr = deck.locator(".slide-title ~ .join-box img.qr")
    assert qr.evaluate("(img) => img.complete && img.naturalWidth") > 100
    join = f"/j/{cfg.join_code}"
    assert join in deck.locator(".join-url").first.inner_text()

    # keyboard only: arrows and space walk the story up to the first quiz round
    first_quiz = kinds.index("quiz")
    deck.keyboard.press("ArrowRight")
    deck.keyboard.press("ArrowLeft")
    assert deck.locator(".slide:not([hidden])").get_attribute("data-kind") == "title"
    for _ in range(first_quiz):
        deck.keyboard.press("Space")
    shown = deck.locator(".slide:not([hidden])")
    assert shown.get_attribute("data-kind") == "quiz"
    # the label and verify-again slides fetched their reports when shown
    expect(deck.locator(".slide-label .card[data-outcome='labelled-ai']")).to_have_count(
        1, timeout=60_000
    )
    again = deck.locator(".slide-verify-again .card[data-outcome]")
    expect(again).to_have_count(1, timeout=60_000)
    assert again.get_attribute("data-outcome") in ("ai-watermark", "recovered")
    expect(shown.locator(".total")).to_have_text("0")

    # three phones join through the short URL and vote
    phones = []
    for choice in ["a", "b", "a"]:
        ctx = browser.new_context(viewport={"width": 390, "height": 800}, is_mobile=True)
        phone = ctx.new_page()
        phone.console = Console(phone)
        phone.goto(url + join)
        assert phone.url.endswith("/quiz")
        phone.locator("#round").wait_for(state="visible")
        phone.locator(f"button.vote[data-choice='{choice}']").click()
        expect(phone.locator("#voted")).to_contain_text(f"You voted {choice.upper()}")
        phones.append((ctx, phone))
    # the presenter's tally follows, live
    expect(shown.locator(".total")).to_have_text("3")
    expect(shown.locator(".bar-a .count")).to_have_text("2")
    expect(phones[0][1].locator("#round .total")).to_have_text("3")
    deck.screenshot(path=str(shots / "talk-quiz.jpg"), type="jpeg", quality=80)

    # space reveals: everyone sees which one is the fake, the evidence and the baselines
    deck.keyboard.press("Space")
    reveal = shown.locator(".reveal")
    reveal.wait_for(state="visible")
    fake = shown.get_attribute("data-fake")
    assert fake in ("a", "b")
    assert f"{fake.upper()} is the fake" in reveal.locator(".answer").inner_text()
    assert "48.2%" in reveal.inner_text() and "59.0%" in reveal.inner_text()
    phone = phones[0][1]
    phone.locator("#round .reveal").wait_for(state="visible")
    assert f"{fake.upper()} is the fake" in phone.locator("#round .answer").inner_text()
    assert phone.locator("button.vote").first.is_disabled()
    phone.screenshot(path=str(shots / "quiz-phone.jpg"), type="jpeg", quality=80)

    # the next round, then F for full screen
    deck.keyboard.press("ArrowRight")
    assert shown.get_attribute("data-round") == "1"
    expect(phone.locator("#round-no")).to_contain_text("round 2")
    deck.keyboard.press("f")
    assert "full" in deck.locator("#deck").get_attribute("class")
    for ctx, ph in phones:
        assert ph.console.errors == []
        ctx.close()
    assert deck.console.errors == []
    presenter.close()


def test_studio_generates_with_progress_and_labels_the_gallery(browser, tmp_path, shots):
    with web_server(studio_out=tmp_path / "studio") as (url, _cfg):
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        page = ctx.new_page()
        page.console = Console(page)
        page.goto(url + "/studio")
        # what the progress bar said, as it said it
        page.evaluate(
            """() => {
                window.seen = [];
                const label = document.getElementById("progress-label");
                new MutationObserver(() => window.seen.push(label.textContent))
                    .observe(label, { childList: true, characterData: true, subtree: true });
            }"""
        )
        page.fill("#prompt", "a photo of a person at a conference")
        page.fill("#seed", "3")
        page.fill("#steps", "4")
        page.click("#go")
        page.locator("#progress[data-state='done']").wait_for(state="attached", timeout=300_000)
        seen = page.evaluate("window.seen")
        assert any(s.startswith("step ") and s.endswith(" of 4") for s in seen), seen
        item = page.locator(".gallery .pic").first
        expect(item).to_have_attribute("data-outcome", "labelled-ai", timeout=60_000)
        assert "fakestudio" in item.inner_text()  # its watermark payload is shown
        assert "done in" in page.locator("#status").inner_text()
        assert len(list((tmp_path / "studio").glob("*.png"))) == 1

        # simulate an upload: the copy is verified beside the original, and never written
        item.locator("button.simulate").click()
        copy = page.locator("#upload-cards .card.copy")
        copy.wait_for(timeout=120_000)
        assert copy.get_attribute("data-outcome") in ("ai-watermark", "recovered")
        assert page.locator("#upload-cards .card.original").get_attribute("data-outcome") == (
            "labelled-ai"
        )
        assert len(list((tmp_path / "studio").iterdir())) == 1
        page.evaluate("() => window.scrollTo(0, 0)")
        page.screenshot(path=str(shots / "studio.jpg"), type="jpeg", quality=80)
        assert page.console.errors == []
        ctx.close()


def test_audit_streams_rows_filters_and_matches_the_cli(page, site, tmp_path, shots):
    import os
    import subprocess
    import sys
    from pathlib import Path

    url, _ = site
    folder = tmp_path / "uploads"
    fake = labelled_png(folder, seed=51, name="labelled")
    stripped_copy(fake, folder / "stripped.jpg")
    (folder / "sub").mkdir()
    from tests.web_support import plain_photo

    plain_photo(folder / "sub" / "photo.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (folder / "notes.txt").write_text("not an image")

    page.goto(url + "/audit")
    page.fill("#folder", str(folder))
    page.click("#start")
    status = page.locator("#audit-status[data-state='done']")
    status.wait_for(state="attached", timeout=180_000)
    assert page.locator("#rows tr").count() == 4
    assert page.locator("[data-count='labelled']").inner_text() == "2"
    page.locator(".filter[data-category='labelled']").click()
    assert page.locator("#rows tr:not([hidden])").count() == 2
    page.locator(".filter[data-category='unreadable']").click()
    visible = page.locator("#rows tr:not([hidden])")
    assert visible.count() == 1
    assert visible.locator(".file-name").inner_text() == "broken.png"
    page.locator(".filter[data-category='']").click()
    page.screenshot(path=str(shots / "audit.jpg"), type="jpeg", quality=80)

    with page.expect_download() as dl:
        page.locator("#json").click()
    doc = json.loads(open(dl.value.path()).read())
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    cli = subprocess.run(
        [sys.executable, "-m", "fakestudio", "audit", str(folder), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    expected = json.loads(cli.stdout)
    assert doc["schema"] == expected["schema"] == "fakestudio.audit/1"
    assert doc["summary"] == expected["summary"]
    outcomes = {r["file"]: r["verdict"]["outcome"] for r in doc["files"]}
    assert outcomes == {r["file"]: r["verdict"]["outcome"] for r in expected["files"]}
    with page.expect_download() as dl:
        page.locator("#csv").click()
    lines = open(dl.value.path(), encoding="utf-8").read().strip().splitlines()
    assert lines[0].startswith("file,outcome,category") and len(lines) == 5
    assert page.console.errors == []
