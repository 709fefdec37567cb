"""Share lists page in SQL and say where the next page is, as Manila does:
``limit``/``offset``, ``marker``, ``shares_links`` with a ``next`` link on a
full page, ``count`` with ``with_count`` from 2.42 - in-process for the exact
shapes, and through python-manilaclient and openstacksdk over real HTTP."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from shareflow.auth.tokens import TokenFile
from tests.api.conftest import assert_fault, build_env
from tests.api.test_manilaclient import _Server, manila
from tests.fixtures.coordination import chroot

PAGE = 3
MADE = 8


@pytest.fixture(scope="module")
def paged(api):
    """MADE shares of a project of their own, newest first as listed."""
    token = TokenFile(api.config.auth.tokens_file).issue("proj-paging", "pager")[0]
    ids = [api.create_share(token=token, size=1 + i % 3, name=f"pg-{i}")["id"] for i in range(MADE)]
    listed = [s["id"] for s in api.get("/v2/shares", token=token).json["shares"]]
    assert sorted(listed) == sorted(ids)
    return token, listed


def _next(body: dict) -> str | None:
    links = [link["href"] for link in body.get("shares_links", []) if link["rel"] == "next"]
    assert len(links) <= 1
    return links[0] if links else None


def test_a_full_page_links_to_the_next_and_following_the_links_lists_every_share_once(api, paged):
    token, newest_first = paged
    seen, pages = [], 0
    path, params = "/v2/shares/detail", {"limit": str(PAGE), "sort_key": "created_at", "sort_dir": "desc"}
    while path is not None:
        body = api.get(path, token=token, params=params).json
        pages += 1
        seen += [s["id"] for s in body["shares"]]
        assert all("export_locations" not in s and "status" in s for s in body["shares"])  # still detailed
        href = _next(body)
        if href is None:
            break
        url = urlsplit(href)
        assert url.scheme == "http" and url.path == "/v2/shares/detail"
        query = parse_qs(url.query)
        # Manila's shape: the request's parameters, and the last item as marker.
        assert query["marker"] == [body["shares"][-1]["id"]]
        assert query["limit"] == [str(PAGE)] and query["sort_key"] == ["created_at"]
        path, params = url.path, {k: v[-1] for k, v in query.items()}
    assert seen == newest_first
    # 8 shares in pages of 3: two full pages with a link, a last one without.
    assert pages == 3


def test_no_next_link_without_a_limit_or_on_a_short_page(api, paged):
    token, newest_first = paged
    assert "shares_links" not in api.get("/v2/shares", token=token).json
    body = api.get("/v2/shares", token=token, params={"limit": "5", "offset": str(MADE - 2)}).json
    assert [s["id"] for s in body["shares"]] == newest_first[-2:] and "shares_links" not in body


def test_offset_pages_and_a_marker_starts_after_its_share_whatever_the_offset(api, paged):
    token, newest_first = paged
    page = api.get("/v2/shares", token=token, params={"limit": "2", "offset": "3"}).json
    assert [s["id"] for s in page["shares"]] == newest_first[3:5]
    # The next link keeps the offset (as Manila's does); with a marker it is not applied.
    for offset in (None, "3", "6"):
        params = {"limit": "2", "marker": newest_first[4]} | ({"offset": offset} if offset else {})
        after = api.get("/v2/shares", token=token, params=params).json
        assert [s["id"] for s in after["shares"]] == newest_first[5:7]


def test_marker_pages_in_any_sort_order(api, paged):
    token, _ = paged
    for key, direction in (("size", "asc"), ("name", "desc"), ("id", "asc")):
        everything = [s["id"] for s in api.get("/v2/shares", token=token, params={
            "sort_key": key, "sort_dir": direction}).json["shares"]]
        walked, marker = [], None
        while True:
            params = {"sort_key": key, "sort_dir": direction, "limit": "3"} | ({"marker": marker} if marker else {})
            got = [s["id"] for s in api.get("/v2/shares", token=token, params=params).json["shares"]]
            walked += got
            if len(got) < 3:
                break
            marker = got[-1]
        assert walked == everything, (key, direction)


def test_unknown_or_invisible_marker_is_400(api, paged):
    token, _ = paged
    message = assert_fault(api.get("/v2/shares", token=token, params={"marker": str(uuid.uuid4())}), 400)
    assert "Marker" in message and "could not be found" in message
    bobs = api.create_share(token=api.tokens["bob"])
    assert_fault(api.get("/v2/shares", token=token, params={"marker": bobs["id"]}), 400)
    assert_fault(api.get("/v2/shares", token=token, params={"marker": "x" * 300}), 400)


def test_with_count_counts_every_match_from_2_42(api, paged):
    token, _ = paged
    body = api.get("/v2/shares", token=token, params={"with_count": "true", "limit": "2"}).json
    assert body["count"] == MADE and len(body["shares"]) == 2
    sized = api.get("/v2/shares/detail", token=token, params={"with_count": "1", "name~": "pg-1"}).json
    assert sized["count"] == 1 == len(sized["shares"])
    assert "count" not in api.get("/v2/shares", token=token, version="2.41",
                                  params={"with_count": "true", "limit": "2"}).json


def test_export_location_filters_are_applied_before_the_page(api, paged):
    token, newest_first = paged
    target = newest_first[-1]  # the oldest: last in every unfiltered page
    el_id = api.add_export_location(target, f"10.9.9.9:/shares/{target}")
    for params in ({"export_location_path": f"10.9.9.9:/shares/{target}"}, {"export_location_id": el_id}):
        body = api.get("/v2/shares", token=token, params=params | {"limit": "1", "with_count": "true"}).json
        assert [s["id"] for s in body["shares"]] == [target] and body["count"] == 1
    both = {"export_location_id": el_id, "export_location_path": "10.9.9.9:/elsewhere"}
    assert api.get("/v2/shares", token=token, params=both).json["shares"] == []
    # Before 2.35 these are not filters (Manila drops them).
    assert len(api.get("/v2/shares", token=token, version="2.34",
                       params={"export_location_id": el_id}).json["shares"]) == MADE


def test_next_link_carries_the_project_when_the_url_did(api, paged):
    token, _ = paged
    body = api.get("/v2/proj-paging/shares", token=token, params={"limit": "1"}).json
    assert urlsplit(_next(body)).path == "/v2/proj-paging/shares"


# --- unmodified clients over HTTP ------------------------------------------------------


@pytest.fixture(scope="module")
def served(zookeeper_server, tmp_path_factory):
    """The app over HTTP, remembering the path and query of every request."""
    with chroot(zookeeper_server.hosts) as zk_root:
        env = build_env(tmp_path_factory.mktemp("paging"), zookeeper_server.hosts, zk_root)
        seen: list[tuple[str, dict]] = []

        def recording(environ, start_response):
            seen.append((environ["PATH_INFO"], parse_qs(environ.get("QUERY_STRING", ""))))
            return env.client.app(environ, start_response)

        server = _Server(recording)
        try:
            yield env, server, seen
        finally:
            server.close()
            env.close()


@pytest.fixture(scope="module")
def client_shares(served):
    env, server, _ = served
    token = TokenFile(env.config.auth.tokens_file).issue("proj-clients", "pager")[0]
    m = manila(server, token)
    ids = [m.shares.create("NFS", 1, name=f"cl-{i}").id for i in range(5)]
    return token, ids


def test_manilaclient_pages_with_limit_offset_marker_and_count(served, client_shares):
    env, server, _ = served
    token, ids = client_shares
    m = manila(server, token)
    newest_first = [s.id for s in m.shares.list()]
    assert sorted(newest_first) == sorted(ids)
    assert [s.id for s in m.shares.list(search_opts={"limit": 2})] == newest_first[:2]
    assert [s.id for s in m.shares.list(search_opts={"limit": 2, "offset": 2})] == newest_first[2:4]
    after = m.shares.list(search_opts={"limit": 2, "marker": newest_first[1]})
    assert [s.id for s in after] == newest_first[2:4]
    shares, count = m.shares.list(search_opts={"limit": 2, "with_count": True})
    assert count == 5 and len(shares) == 2
    # The raw body, as manilaclient fetched it: Manila's next link, followed by the client.
    _, body = m.client.get("/shares?limit=2")
    href = _next(body)
    assert href is not None
    _, following = m.client.get(href.split("/v2", 1)[1])
    assert [s["id"] for s in following["shares"]] == newest_first[2:4]


def test_openstacksdk_follows_next_links_through_every_page(served, client_shares):
    import openstack

    env, server, seen = served
    token, ids = client_shares
    endpoint = f"{server.url}/v2"
    conn = openstack.connect(auth_type="admin_token", auth={"endpoint": endpoint, "token": token},
                             shared_file_system_endpoint_override=endpoint)
    for details, path in ((True, "/v2/shares/detail"), (False, "/v2/shares")):
        del seen[:]
        listed = [s.id for s in conn.shared_file_system.shares(details=details, limit=2)]
        assert sorted(listed) == sorted(ids) and len(set(listed)) == len(listed)
        pages = [query for p, query in seen if p == path]
        # 5 shares in pages of 2: each page after the first asks from the
        # previous page's last share, as our next link says.
        assert len(pages) >= 3
        assert "marker" not in pages[0] and pages[0]["limit"] == ["2"]
        assert [q["marker"] for q in pages[1:3]] == [[listed[1]], [listed[3]]]
