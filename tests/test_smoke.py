def test_login_page_is_public(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert b"csrf_token" in response.data


def test_catalog_requires_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_login_as_researcher_reaches_catalog(client, login_as):
    login_as("researcher")
    assert client.get("/").status_code == 200
