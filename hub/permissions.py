"""Staff roles and what each may do (docs/console-contract.md, "Roles and permissions")."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    EDITOR = "editor"
    ADMIN = "admin"


class Permission(StrEnum):
    HANDLE_CONVERSATIONS = "handle_conversations"  # be offered, accept, reply
    SEE_ALL_CONVERSATIONS = "see_all_conversations"
    REVEAL_PII = "reveal_pii"
    TAKE_OVER = "take_over"
    WALLBOARD = "wallboard"
    EDIT_KB = "edit_kb"
    MERGE_CUSTOMERS = "merge_customers"
    ADMINISTER = "administer"


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.AGENT: frozenset({Permission.HANDLE_CONVERSATIONS, Permission.MERGE_CUSTOMERS}),
    Role.SUPERVISOR: frozenset(
        {
            Permission.HANDLE_CONVERSATIONS,
            Permission.SEE_ALL_CONVERSATIONS,
            Permission.REVEAL_PII,
            Permission.TAKE_OVER,
            Permission.WALLBOARD,
            Permission.MERGE_CUSTOMERS,
        }
    ),
    Role.EDITOR: frozenset({Permission.EDIT_KB}),
    Role.ADMIN: frozenset(Permission),
}


def has_permission(role: Role, permission: Permission) -> bool:
    return permission in GRANTS[role]
