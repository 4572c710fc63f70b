"""End-to-end: the Network Designer in headless chromium (Playwright), driven as a user would.
Each test saves a screenshot into docs/images/ for docs/apps.md."""

import json

import pytest
from apps_browser import (
    connect,
    drag_to_canvas,
    launch_browser,
    require_front_end,
    screenshot,
)

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.apps import designer

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")

LENET = [  # palette entry, drop position on the canvas
    ("ImageInput", 300, 60), ("Conv2d", 300, 160), ("ReLU", 300, 260), ("MaxPool2d", 300, 360),
    ("Flatten", 600, 60), ("Dense", 600, 160), ("Softmax", 600, 260),
]  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    require_front_end()
    with sync_api.sync_playwright() as playwright:
        browser = launch_browser(playwright)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    handle = designer(root=tmp_path_factory.mktemp("designer"), open_browser=False)
    yield handle
    handle.close()


@pytest.fixture(scope="module")
def loaded_page(browser, server):
    page = browser.new_page(viewport={"width": 1280, "height": 760})
    page.set_default_timeout(15_000)
    page.goto(server.url)
    page.get_by_test_id("palette-Conv2d").wait_for()
    yield page
    page.close()


@pytest.fixture
def app(server):
    return server


@pytest.fixture
def page(loaded_page):
    """The designer page, on a blank network (the New button)."""
    loaded_page.get_by_test_id("new").click()
    loaded_page.wait_for_function("document.querySelectorAll('.layer-node').length == 0")
    return loaded_page


def _names(app) -> list[str]:
    return app.network.layer_names


def _build_lenet(page, app) -> list[str]:
    for count, (layer_type, x, y) in enumerate(LENET, 1):
        drag_to_canvas(page, layer_type, x, y)
        page.wait_for_function(f"document.querySelectorAll('.layer-node').length == {count}")
    names = _names(app)
    assert [type(app.network.layer(n)).__name__ for n in names] == [t for t, _, _ in LENET]
    for source, destination in zip(names, names[1:], strict=False):
        connect(page, source, destination)
        page.wait_for_function(
            f"!document.querySelector('[data-testid=\"size-{destination}\"]').textContent"
            ".startsWith('-')"
        )
    return names


def test_build_lenet_by_dragging_and_connecting_shows_sizes(page, app):
    names = _build_lenet(page, app)
    conv, dense = names[1], names[5]
    assert page.get_by_test_id(f"size-{conv}").text_content().startswith("(8, 26, 26)")
    assert page.get_by_test_id(f"size-{dense}").text_content().startswith("(10)")
    assert app.network.output_shape() == (10,)
    page.get_by_test_id(f"node-{conv}").click()  # a property change comes back with sizes
    field = page.get_by_test_id("prop-filters")
    field.fill("6")
    field.press("Enter")
    page.wait_for_function(
        f"document.querySelector('[data-testid=\"size-{conv}\"]').textContent"
        ".startsWith('(6, 26, 26)')"
    )
    field.fill("0")  # the toolbox's own validation error, next to the field
    field.press("Enter")
    error = page.get_by_test_id("error-filters")
    error.wait_for()
    assert "filters" in error.text_content()
    assert app.network.layer(conv).filters == 6
    page.get_by_test_id("layout").click()
    page.get_by_test_id("fit").click()
    page.wait_for_timeout(300)
    screenshot(page, "designer-lenet")


def test_a_misconnection_shows_on_both_layers_and_undo_fixes_it(page, app):
    app.session.replace(Network([
        L.ImageInput((1, 28, 28), name="input"),
        L.Conv2d(8, 3, padding=0, name="conv"),
        L.ReLU(name="relu"),
    ]))  # fmt: skip
    page.reload()
    page.get_by_test_id("node-relu").wait_for()
    drag_to_canvas(page, "Addition", 650, 330)
    page.get_by_test_id("node-addition_1").wait_for()
    connect(page, "relu", "addition_1", "in1")
    page.wait_for_function("document.querySelectorAll('.react-flow__edge').length == 3")
    connect(page, "input", "addition_1", "in2")
    page.wait_for_function("document.querySelectorAll('.react-flow__edge').length == 4")
    assert app.network.sources("addition_1") == {"in1": "relu", "in2": "input"}
    page.locator(".status-error[data-testid='node-relu']").wait_for()
    for name in ("addition_1", "relu", "input"):
        assert "status-error" in page.get_by_test_id(f"node-{name}").get_attribute("class")
    assert "same size" in page.get_by_test_id("issues").text_content()
    screenshot(page, "designer-error")
    page.get_by_test_id("undo").click()
    page.wait_for_function("!document.querySelector('[data-testid=\"node-input\"]')"
                           ".classList.contains('status-error')")  # fmt: skip
    assert app.network.sources("addition_1") == {"in1": "relu", "in2": None}


def test_exported_python_code_rebuilds_the_network_on_the_canvas(page, app):
    _build_lenet(page, app)
    page.get_by_test_id("export-python").click()
    code_box = page.get_by_test_id("python-code")
    page.wait_for_function("document.querySelector('[data-testid=\"python-code\"]').value"
                           ".includes('build_network')")  # fmt: skip
    namespace: dict = {}
    exec(code_box.input_value(), namespace)
    rebuilt = namespace["build_network"]()
    assert json.loads(rebuilt.to_json()) == json.loads(app.network.to_json())
    screenshot(page, "designer-python")


def test_a_torchvision_resnet18_import_opens_and_freezes_up_to_a_block(page, app):
    torchvision = pytest.importorskip("torchvision")
    import torch

    from deeptoolbox.interop import from_torch

    net = from_torch(torchvision.models.resnet18(weights=None), torch.zeros(1, 3, 64, 64))
    app.session.replace(net)  # as apps.designer(net) opens it (files: test_app_server.py)
    page.reload()
    page.wait_for_function("document.querySelectorAll('.react-flow__minimap-node').length > 60")
    block = next(n for n in app.network.layer_names if n.startswith("layer2"))
    # a click event on the node itself: a pointer click at its coordinates can land on a
    # neighbour while the view is still being fitted after the reload
    page.get_by_test_id(f"node-{block}").dispatch_event("click")
    sync_api.expect(page.get_by_test_id("tl-freeze")).to_contain_text(block)
    page.get_by_test_id("tl-freeze").click()
    page.wait_for_function("document.querySelectorAll('.layer-node.frozen').length > 10")
    order = app.network.layer_names
    assert app.network.frozen_layers == order[: order.index(block) + 1]
    for _ in range(7):  # zoom in on the frozen blocks at the top for the picture
        page.locator(".react-flow__controls-zoomin").click()
    page.mouse.move(600, 120)
    page.mouse.down()
    page.mouse.move(600, 700, steps=5)
    page.mouse.up()
    page.wait_for_timeout(300)
    screenshot(page, "designer-resnet18")


def test_start_from_a_pretrained_architecture_of_the_hub(page, app, tmp_path, monkeypatch):
    """The Pretrained… start page lists the hub; one without cached weights opens with random
    weights and a note that says where the weights file goes."""
    monkeypatch.setenv("DEEPTOOLBOX_CACHE", str(tmp_path))  # the server runs in this process
    page.get_by_test_id("pretrained").click()
    page.get_by_test_id("pretrained-search").fill("squeezenet")
    rows = page.locator("[data-testid^=pretrained-squeezenet]")
    sync_api.expect(rows).to_have_count(2, timeout=30_000)  # the hub loads on first use
    assert "random" in page.get_by_test_id("pretrained-squeezenet1_1").text_content()
    screenshot(page, "designer-pretrained")
    page.get_by_test_id("pretrained-squeezenet1_1").click()
    page.get_by_test_id("pretrained-dialog").wait_for(state="detached")
    sync_api.expect(page.get_by_test_id("message")).to_contain_text(
        "random weights", timeout=30_000
    )
    page.wait_for_function("document.querySelectorAll('.react-flow__minimap-node').length > 30")
    assert app.network.classes is not None and len(app.network.layer_names) > 30


def _zoom(page) -> float:
    transform = page.locator(".react-flow__viewport").evaluate("e => e.style.transform")
    return float(transform.split("scale(")[1].rstrip(")"))


def test_a_200_layer_network_opens_readable_on_its_input_layer_and_fit_shows_it_all(
    browser, tmp_path
):
    body = [layer for _ in range(100) for layer in (L.Dense(4), L.ReLU())]
    net = Network([L.FeatureInput(4), *body], name="deep")
    assert len(net.layer_names) == 201
    handle = designer(net, root=tmp_path, open_browser=False)
    page = browser.new_page(viewport={"width": 1280, "height": 760})
    try:
        page.set_default_timeout(30_000)
        page.goto(handle.url)
        page.wait_for_function("document.querySelector('[data-testid=canvas]').dataset.laidOut"
                               " === 'true'")  # fmt: skip
        first = net.layer_names[0]
        node = page.locator(f".react-flow__node[data-id='{first}']")
        node.wait_for()
        page.wait_for_timeout(300)  # the opening view is set just after the layout
        assert _zoom(page) >= 0.6
        canvas, box = page.get_by_test_id("canvas").bounding_box(), node.bounding_box()
        centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        assert abs(centre[0] - (canvas["x"] + canvas["width"] / 2)) < 5
        assert abs(centre[1] - (canvas["y"] + canvas["height"] / 2)) < 5
        assert "FeatureInput" in node.text_content()
        page.get_by_test_id("fit").click()  # the whole graph, too small to read
        page.wait_for_function(
            "Number(document.querySelector('.react-flow__viewport').style.transform"
            ".split('scale(')[1].slice(0, -1)) < 0.2"
        )
    finally:
        page.close()
        handle.close()


@pytest.mark.parametrize("width", [1500, 1280])
def test_the_summary_bar_is_not_cut_off(browser, server, width):
    """Every part of the toolbar and its summary is inside the window and not clipped."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        page.goto(server.url)
        page.get_by_test_id("summary").locator(".summary-part").first.wait_for()
        clipped = page.evaluate(
            """() => [...document.querySelectorAll('.toolbar, .toolbar *')].filter((e) => {
                const box = e.getBoundingClientRect();
                return e.scrollWidth > e.clientWidth + 1 || box.right > window.innerWidth + 0.5;
            }).map((e) => e.className || e.tagName)"""
        )
        assert clipped == []
        assert page.get_by_test_id("summary").inner_text().strip()
    finally:
        page.close()
