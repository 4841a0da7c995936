"""Each forge's check and parse of its deliveries, on its own documented payloads (pure:
no server). The API tests send the same fixtures through the receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from prefect_pipelines.errors import InvalidInputError, SignatureError
from prefect_pipelines.forges import FORGES, Skip, forge_class
from prefect_pipelines.forges.bitbucketcloud import BitbucketCloud
from prefect_pipelines.forges.bitbucketserver import BitbucketServer
from prefect_pipelines.forges.gitea import Gitea
from prefect_pipelines.forges.github import GitHub
from prefect_pipelines.forges.gitlab import GitLab

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def payload(forge: str, name: str) -> dict:  # type: ignore[type-arg]
    return json.loads((FIXTURES / forge / name).read_text())


class TestGitLab:
    forge = GitLab("")

    def test_a_push_is_its_head_commit(self) -> None:
        delivery = self.forge.parse("Push Hook", payload("gitlab", "push.json"))
        assert (delivery.event, delivery.branch, delivery.ref) == ("push", "master", "refs/heads/master")
        assert delivery.commit == "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
        assert delivery.message == "fixed readme" and delivery.author == "GitLab dev user"
        assert delivery.html_link == ("http://example.com/mike/diaspora/-/compare/"
                                      "95790bf891e76fee5e1747ab589903a6a1f80f22...da1560886d4f094c3e6c9ef40349f7d38b5d27d7")

    def test_a_tag_push_is_event_tag(self) -> None:
        delivery = self.forge.parse("Tag Push Hook", payload("gitlab", "tag_push.json"))
        assert (delivery.event, delivery.branch) == ("tag", "v1.0.0")
        assert delivery.commit == "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7"

    @pytest.mark.parametrize("name, action", [("merge_request-open.json", "open"),
                                              ("merge_request-update.json", "update")])
    def test_a_merge_request_builds_its_last_commit_into_its_target(self, name: str, action: str) -> None:
        data = payload("gitlab", name)
        delivery = self.forge.parse("Merge Request Hook", data)
        attributes = data["object_attributes"]
        assert attributes["action"] == action
        assert delivery.event == "pull_request" and delivery.branch == attributes["target_branch"]
        assert delivery.commit == attributes["last_commit"]["id"]
        assert delivery.ref == f"refs/merge-requests/{attributes['iid']}/head"
        assert delivery.title == attributes["title"] and delivery.html_link == attributes["url"]

    @pytest.mark.parametrize("event, name, why", [
        ("Push Hook", "push-branch-deleted.json", "was deleted"),
        ("Merge Request Hook", "merge_request-close.json", "merge request close"),
        ("Merge Request Hook", "merge_request-merge.json", "merge request merge"),
        ("Wiki Page Hook", "wiki_page.json", "runs nothing"),
    ])
    def test_what_runs_nothing(self, event: str, name: str, why: str) -> None:
        with pytest.raises(Skip, match=why):
            self.forge.parse(event, payload("gitlab", name))

    def test_an_update_without_new_commits_runs_nothing(self) -> None:
        data = payload("gitlab", "merge_request-update.json")
        del data["object_attributes"]["oldrev"]
        with pytest.raises(Skip, match="without new commits"):
            self.forge.parse("Merge Request Hook", data)

    def test_the_token_is_the_secret_itself(self) -> None:
        self.forge.verify("s3cret", {"x-gitlab-token": "s3cret"}, b"{}")
        for given in ("other", "", None):
            headers = {} if given is None else {"x-gitlab-token": given}
            with pytest.raises(SignatureError, match="X-Gitlab-Token"):
                self.forge.verify("s3cret", headers, b"{}")

    def test_a_delivery_names_its_missing_headers(self) -> None:
        body = (FIXTURES / "gitlab" / "push.json").read_bytes()
        with pytest.raises(InvalidInputError) as no_event:
            self.forge.delivery({}, body)
        assert no_event.value.field_name == "X-Gitlab-Event"
        with pytest.raises(InvalidInputError) as no_id:
            self.forge.delivery({"X-Gitlab-Event": "Push Hook"}, body)
        assert no_id.value.field_name == "X-Gitlab-Event-UUID"
        delivery_id, delivery = self.forge.delivery(
            {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": "0f6e-1"}, body)
        assert delivery_id == "0f6e-1" and delivery.branch == "master"


class TestGitea:
    forge = Gitea("")

    def test_a_push_is_its_after_commit(self) -> None:
        data = payload("gitea", "push.json")
        delivery = self.forge.parse("push", data)
        assert (delivery.event, delivery.branch, delivery.commit) == ("push", "develop", data["after"])
        assert delivery.html_link == data["compare_url"]
        assert (delivery.message, delivery.author, delivery.email) == ("Webhooks Yay!", "Gitea", "someone@gitea.io")

    def test_a_tag_runs_from_its_create_event_only(self) -> None:
        delivery = self.forge.parse("create", payload("gitea", "create-tag.json"))
        assert (delivery.event, delivery.branch, delivery.ref) == ("tag", "v1.0.0", "refs/tags/v1.0.0")
        assert delivery.commit == "599d25c67b05717269f50ac082b34f176d085179"
        pushed = payload("gitea", "push.json") | {"ref": "refs/tags/v1.0.0"}
        with pytest.raises(Skip, match="its create event runs it"):
            self.forge.parse("push", pushed)

    @pytest.mark.parametrize("name", ["pull_request-opened.json", "pull_request-synchronized.json"])
    def test_a_pull_request_builds_its_head_into_its_base(self, name: str) -> None:
        data = payload("gitea", name)
        delivery = self.forge.parse("pull_request", data)
        pull = data["pull_request"]
        assert delivery.event == "pull_request" and delivery.branch == pull["base"]["ref"]
        assert delivery.commit == pull["head"]["sha"] and delivery.ref == f"refs/pull/{pull['number']}/head"

    @pytest.mark.parametrize("event, name", [("pull_request", "pull_request-closed.json"),
                                             ("pull_request", "pull_request-merged.json"),
                                             ("delete", "delete-branch.json"),
                                             ("issues", "issues-opened.json")])
    def test_what_runs_nothing(self, event: str, name: str) -> None:
        with pytest.raises(Skip):
            self.forge.parse(event, payload("gitea", name))

    def test_forgejo_s_own_header_names_are_read_too(self) -> None:
        body = (FIXTURES / "gitea" / "push.json").read_bytes()
        delivery_id, delivery = self.forge.delivery(
            {"X-Forgejo-Event": "push", "X-Forgejo-Delivery": "f-1"}, body)
        assert delivery_id == "f-1" and delivery.branch == "develop"
        with pytest.raises(InvalidInputError) as missing:
            self.forge.delivery({"X-Forgejo-Event": "push"}, body)
        assert missing.value.field_name == "X-Gitea-Delivery"

    def test_the_signature_is_a_bare_hex_hmac_gitea_s_or_forgejo_s(self) -> None:
        body = b'{"ref": "x"}'
        digest = hmac.new(b"k", body, hashlib.sha256).hexdigest()
        self.forge.verify("k", {"x-gitea-signature": digest}, body)
        self.forge.verify("k", {"x-forgejo-signature": digest}, body)
        with pytest.raises(SignatureError, match="X-Gitea-Signature"):
            self.forge.verify("other", {"x-gitea-signature": digest}, body)
        with pytest.raises(SignatureError, match="has no"):
            self.forge.verify("k", {}, body)


class TestBitbucketCloud:
    forge = BitbucketCloud("https://api.bitbucket.org/2.0")

    def test_a_push_and_a_tag(self) -> None:
        push = self.forge.parse("repo:push", payload("bitbucketcloud", "repo_push.json"))
        assert (push.event, push.branch, push.ref) == ("push", "master", "refs/heads/master")
        assert push.commit == "141977fedf5cf35aa290ac87d4b5177ac4cd9de1"
        assert (push.message, push.author, push.email) == ("Update README", "Brad Rydzewski",
                                                           "brad.rydzewski@gmail.com")
        tag = self.forge.parse("repo:push", payload("bitbucketcloud", "repo_push-tag.json"))
        assert (tag.event, tag.branch, tag.ref) == ("tag", "feature/x", "refs/tags/feature/x")

    @pytest.mark.parametrize("event, name, head", [("pullrequest:created", "pullrequest_created.json", "507a576e59b3"),
                                                   ("pullrequest:updated", "pullrequest_updated.json", "0704fc5beccc")])
    def test_a_pull_request_fetches_its_source_branch(self, event: str, name: str, head: str) -> None:
        delivery = self.forge.parse(event, payload("bitbucketcloud", name))
        assert (delivery.event, delivery.branch, delivery.ref) == ("pull_request", "master", "refs/heads/develop")
        assert delivery.commit == head and delivery.title == "Awesome new feature"

    @pytest.mark.parametrize("event, name", [("repo:push", "repo_push-branch-deleted.json"),
                                             ("pullrequest:fulfilled", "pullrequest_fulfilled.json"),
                                             ("pullrequest:rejected", "pullrequest_rejected.json"),
                                             ("repo:commit_status_created", "repo_commit_status_created.json")])
    def test_what_runs_nothing(self, event: str, name: str) -> None:
        with pytest.raises(Skip):
            self.forge.parse(event, payload("bitbucketcloud", name))

    def test_the_web_host_of_its_own_api_and_of_another(self) -> None:
        assert self.forge.web_host == "bitbucket.org"
        assert self.forge.repo_name("https://alice@bitbucket.org/team/app.git") == "team/app"
        proxied = BitbucketCloud("http://127.0.0.1:8000/2.0")
        assert proxied.token_url() == "http://127.0.0.1:8000/site/oauth2/access_token"


class TestBitbucketServer:
    forge = BitbucketServer("https://bitbucket.example.com")

    def test_refs_changed_is_a_push_or_a_tag(self) -> None:
        push = self.forge.parse("repo:refs_changed", payload("bitbucketserver", "repo_refs_changed.json"))
        assert (push.event, push.branch, push.ref) == ("push", "renovate-all", "refs/heads/renovate-all")
        assert push.commit == "76797d54bca87db6d1e3e82ee40622c7908aa514" and push.author == "Renovate Bot"
        tag = self.forge.parse("repo:refs_changed", payload("bitbucketserver", "repo_refs_changed-tag.json"))
        assert (tag.event, tag.branch, tag.commit) == ("tag", "v1.1.0", "823b2230a56056231c9425d63758fa87078a66b4")

    @pytest.mark.parametrize("event, name", [("pr:opened", "pr_opened.json"),
                                             ("pr:from_ref_updated", "pr_from_ref_updated.json")])
    def test_a_pull_request_builds_its_from_ref(self, event: str, name: str) -> None:
        data = payload("bitbucketserver", name)
        delivery = self.forge.parse(event, data)
        pull = data["pullRequest"]
        assert delivery.event == "pull_request" and delivery.branch == pull["toRef"]["displayId"]
        assert delivery.commit == pull["fromRef"]["latestCommit"]
        assert delivery.ref == f"refs/pull-requests/{pull['id']}/from"

    @pytest.mark.parametrize("event, name", [("repo:refs_changed", "repo_refs_changed-branch-deleted.json"),
                                             ("pr:merged", "pr_merged.json"), ("pr:declined", "pr_declined.json"),
                                             ("pr:modified", "pr_modified.json")])
    def test_what_runs_nothing(self, event: str, name: str) -> None:
        with pytest.raises(Skip):
            self.forge.parse(event, payload("bitbucketserver", name))
        with pytest.raises(Skip, match="pong"):
            self.forge.parse("diagnostics:ping", {"test": True})

    def test_repositories_are_named_by_project_key(self) -> None:
        assert self.forge.repo_name("https://bitbucket.example.com/scm/dev/app.git") == "DEV/app"
        assert self.forge.repo_name("https://me@bitbucket.example.com/scm/~me/mine.git") == "~me/mine"
        assert self.forge.repo_name("https://elsewhere.example.com/scm/dev/app.git") is None


class TestGitHub:
    forge = GitHub("")

    def test_the_signature_is_an_hmac_of_the_body(self) -> None:
        body = b'{"zen": "hi"}'
        good = "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
        self.forge.verify("k", {"x-hub-signature-256": good}, body)
        with pytest.raises(SignatureError, match="does not match"):
            self.forge.verify("other", {"x-hub-signature-256": good}, body)
        with pytest.raises(SignatureError, match="has no"):
            self.forge.verify("k", {}, body)


def test_every_forge_names_its_headers_and_config_field() -> None:
    fields = {forge.config_field for forge in FORGES.values()}
    assert len(fields) == len(FORGES)
    for kind, forge in FORGES.items():
        assert forge.kind == kind and forge.config_field.lower() == f"{kind}config"
        assert forge.headers.event.startswith("X-") and forge.headers.delivery.startswith("X-")
    with pytest.raises(InvalidInputError) as unknown:
        forge_class("svn")
    assert unknown.value.field_name == "sourceCodeType" and "github" in unknown.value.message
