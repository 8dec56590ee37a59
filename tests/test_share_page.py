"""Share links, /f/<manifest id>: the peer page in download mode (docs/browser.md "Files")."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

MANIFEST_ID = "QFOJZOg_EBr60ZjRehltCDxw_cMuzt-kUh6_Pa2NwOI"


def test_a_share_link_renders_the_peer_page_in_download_mode(client: Client) -> None:
    response = client.get(f"/f/{MANIFEST_ID}")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="download" class="card download" data-manifest-id="{MANIFEST_ID}"' in html
    assert 'data-state="starting"' in html
    assert 'id="swarm-status"' in html
    assert 'data-community="main"' in html
    assert 'id="share-file"' in html
    assert 'id="post-text"' in html


def test_the_community_of_a_share_link_comes_from_its_query(client: Client) -> None:
    html = client.get(f"/f/{MANIFEST_ID}?community=photos").content.decode()
    assert 'data-community="photos"' in html


def test_the_home_page_has_no_download_panel(client: Client) -> None:
    html = client.get("/").content.decode()
    assert 'id="download"' not in html


@pytest.mark.parametrize(
    "bad",
    [
        "nope",
        MANIFEST_ID[:-1],  # 42 characters
        MANIFEST_ID[:-1] + "B",  # not canonical: the last character carries stray bits
        MANIFEST_ID + "A",
        MANIFEST_ID.replace("_", "/", 1),
    ],
)
def test_anything_but_a_manifest_id_is_not_found(client: Client, bad: str) -> None:
    assert client.get(f"/f/{bad}").status_code == 404
