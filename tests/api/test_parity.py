"""Every invitation action the admin pages offer is offered by the API too."""

from __future__ import annotations

# admin endpoint -> the API operation ("METHOD path") that does the same.
PARITY = {
    "admin.invitations": "GET /api/v1/invitations/",
    "admin.invitations_links_csv": "GET /api/v1/invitations/links",
    "admin.invitation_create": "POST /api/v1/invitations/",  # duplicate (?from=) is a create too
    "admin.invitation_detail": "GET /api/v1/invitations/{invitation_id}",
    "admin.invitation_edit": "PATCH /api/v1/invitations/{invitation_id}",
    "admin.invitation_delete": "DELETE /api/v1/invitations/{invitation_id}",
    "admin.invitation_revoke": "POST /api/v1/invitations/{invitation_id}/revoke",
    "admin.invitation_expiry_action": ["POST /api/v1/invitations/{invitation_id}/resend",
                                       "POST /api/v1/invitations/{invitation_id}/extend"],
    "admin.invitation_email_retry":
        "POST /api/v1/invitations/{invitation_id}/emails/{message_id}/retry",
    "admin.invitations_bulk_action": "POST /api/v1/invitations/bulk-action",
    "admin.invitations_bulk": "POST /api/v1/invitations/bulk",
}


def test_every_admin_invitation_action_has_an_api_operation(app, client):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()
                 if rule.endpoint.startswith("admin.invitation")}
    assert endpoints == set(PARITY), "a new admin invitation action needs its API operation"
    spec = client.get("/api/v1/openapi.json").get_json()
    offered = {f"{method.upper()} {path}" for path, item in spec["paths"].items()
               for method in item if method in {"get", "post", "patch", "put", "delete"}}
    wanted = {op for ops in PARITY.values() for op in ([ops] if isinstance(ops, str) else ops)}
    assert wanted - offered == set()
    # and the API's own extras (authentik's send_email and used_by)
    assert {"POST /api/v1/invitations/{invitation_id}/send-email",
            "GET /api/v1/invitations/{invitation_id}/uses"} <= offered


# The other pages the API stands in for: the account page's Accept/Decline and the instance's
# tenant pages.
OTHER_PARITY = {
    "account.answer_invitation": ["POST /api/v1/me/invitations/{invitation_id}/accept",
                                  "POST /api/v1/me/invitations/{invitation_id}/decline"],
    "instance.tenant_list": ["GET /api/v1/tenants/"],
    "instance.tenant_edit": ["POST /api/v1/tenants/", "GET /api/v1/tenants/{tenant_id}",
                             "PATCH /api/v1/tenants/{tenant_id}"],
    "instance.tenant_delete": ["DELETE /api/v1/tenants/{tenant_id}"],
}


def test_accepting_and_tenant_pages_have_their_api_operations(app, client):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()
                 if rule.endpoint.startswith("instance.tenant")
                 or rule.endpoint == "account.answer_invitation"}
    assert endpoints == set(OTHER_PARITY), "a new tenant page needs its API operation"
    spec = client.get("/api/v1/openapi.json").get_json()
    offered = {f"{method.upper()} {path}" for path, item in spec["paths"].items()
               for method in item if method in {"get", "post", "patch", "put", "delete"}}
    assert {op for ops in OTHER_PARITY.values() for op in ops} - offered == set()


# The access and user pages: groups and roles are changed (and users changed) through the same
# services (access.service, auth.service) on both paths.
ACCESS_PARITY = {
    "admin.access": ["GET /api/v1/groups/", "GET /api/v1/roles/"],
    "admin.group_edit": ["POST /api/v1/groups/", "GET /api/v1/groups/{group_id}",
                         "PATCH /api/v1/groups/{group_id}"],
    "admin.role_edit": ["POST /api/v1/roles/", "GET /api/v1/roles/{role_id}",
                        "PATCH /api/v1/roles/{role_id}"],
    "admin.users": ["GET /api/v1/users/"],
    "admin.user_detail": ["GET /api/v1/users/{user_id}", "GET /api/v1/users/{user_id}/memberships"],
    "admin.user_create": ["POST /api/v1/users/"],
    "admin.user_set_active": ["POST /api/v1/users/{user_id}/deactivate",
                              "POST /api/v1/users/{user_id}/activate"],
    # Removing someone's lost authenticator is a help-desk step done by a person, on the page.
    "admin.user_remove_authenticator": [],
    # A superadmin adding an existing account to a tenant, or removing a member: on the page and
    # the CLI (`flask tenants add-member / remove-member`, one service); no API operation yet.
    "admin.user_add_member": [],
    "admin.user_remove_member": [],
}
# ... and what the API adds beyond the pages.
API_ONLY = ["DELETE /api/v1/groups/{group_id}", "DELETE /api/v1/roles/{role_id}",
            "PATCH /api/v1/users/{user_id}", "DELETE /api/v1/users/{user_id}"]


def _offered(client) -> set[str]:
    spec = client.get("/api/v1/openapi.json").get_json()
    return {f"{method.upper()} {path}" for path, item in spec["paths"].items()
            for method in item if method in {"get", "post", "patch", "put", "delete"}}


def test_access_and_user_pages_have_their_api_operations(app, client):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()
                 if rule.endpoint in {"admin.access"} or rule.endpoint.startswith(
                     ("admin.group", "admin.role", "admin.user"))}
    assert endpoints == set(ACCESS_PARITY), "a new access or user page needs its API operation"
    offered = _offered(client)
    assert {op for ops in ACCESS_PARITY.values() for op in ops} - offered == set()
    assert set(API_ONLY) - offered == set()


TENANT_SCOPED = ("/api/v1/invitations", "/api/v1/users", "/api/v1/groups", "/api/v1/roles",
                 "/api/v1/flows", "/api/v1/audit-events")


def test_every_tenant_scoped_operation_is_offered_under_the_tenant_path_too(client):
    offered = _offered(client)
    scoped = {op for op in offered if op.split(" ", 1)[1].startswith(TENANT_SCOPED)}
    assert len(scoped) == 36
    in_tenant = {op.replace(" /api/v1/", " /api/v1/{tenant}/", 1) for op in scoped}
    assert in_tenant - offered == set()
    others = {op for op in offered if "/{tenant}/" in op} - in_tenant
    assert others == set()  # nothing else (tenants, me) answers under a tenant
