"""The dashboard in headless Debian Chromium (Playwright), on a finished tiny campaign,
served by uvicorn as `cutloop serve` serves it: charts and highlighted flagged tokens
render, nothing is fetched from outside the server, and the page logs no error."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from api.app import create_app
from tests.api.served import FINISHED, served_on_a_port

TIMEOUT_MS = 30_000


@pytest.mark.parametrize("finished_store", ["sqlite"], indirect=True)
def test_the_dashboard_draws_the_charts_and_highlights_flagged_tokens(finished_store, browser):
    with served_on_a_port(create_app(finished_store)) as url:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        errors, outside = [], []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        def only_this_server(route):
            if urlparse(route.request.url).netloc != urlparse(url).netloc:
                outside.append(route.request.url)
                return route.abort()
            return route.continue_()

        page.route("**/*", only_this_server)
        page.goto(url)
        expect(page.locator("#campaign-name")).to_have_text(FINISHED)
        expect(page.locator("#campaign-status")).to_have_text("done")
        # win rate per round 0..2, loss and flagged fraction for the trained rounds
        expect(page.locator('#chart-winrate circle[data-series="win rate"]')).to_have_count(3)
        expect(page.locator('#chart-winrate circle[data-series="LC win rate"]')).to_have_count(1)
        expect(page.locator("#chart-loss circle.point")).to_have_count(2)
        expect(page.locator("#chart-flagged circle.point")).to_have_count(2)
        title = page.locator("#chart-winrate circle.point title").first.text_content()
        assert title.startswith("win rate, round 0: 50.000")
        # the headline metric with its 95% interval, as the API computes it
        expect(page.locator("#chart-pstrict circle.point")).to_have_count(3)
        expect(page.locator("#chart-pstrict g.errorbar")).to_have_count(3)
        rounds = page.request.get(f"{url}/api/v1/campaigns/{FINISHED}/rounds").json()
        low, high = rounds[0]["prompt_strict_ci95"]
        assert low <= rounds[0]["prompt_strict"] <= high and high > low
        first = page.locator("#chart-pstrict circle.point title").first.text_content()
        assert first.endswith(f"({low:.3f}–{high:.3f})")
        expect(page.locator("#rounds tbody tr")).to_have_count(3)

        page.select_option("#f-polarity", "negative")
        rows = page.locator("#judgments tbody tr")
        expect(rows.first).to_be_visible()
        rows.first.click()
        expect(page.locator("#answer-judgments .judgment.negative")).to_have_count(1)
        flagged = page.locator("#answer-text mark.flagged")
        expect(flagged.first).to_be_visible()
        generation = rows.first.get_attribute("data-generation")
        answer = page.request.get(f"{url}/api/v1/campaigns/{FINISHED}/answers/{generation}")
        report = answer.json()["flagged_tokens"][-1]
        assert flagged.count() == report["flagged"] > 0
        assert flagged.first.get_attribute("title").startswith("p_al / p_mis = ")
        shown = page.locator("#answer-text").text_content()
        assert shown == "".join(s["text"] for s in report["segments"])
        # a judgment's spans, beside the flagged tokens, as the answer's own text
        negatives = page.request.get(
            f"{url}/api/v1/campaigns/{FINISHED}/rounds/1/judgments?polarity=negative"
        ).json()["data"]
        located = next(j for j in negatives if j["spans"])
        page.locator(f'#judgments tbody tr[data-generation="{located["generation_id"]}"]').click()
        judged = page.locator("#answer-judgments mark.judged")
        expect(judged).to_have_count(len(located["spans"]))
        texts = [located["answer"][a:b] for a, b in located["spans"]]
        assert judged.all_text_contents() == texts
        page.close()
    assert outside == [] and errors == []
