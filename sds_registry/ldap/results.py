"""LDAP result codes (RFC 4511 §4.1.9, Appendix A) and the one mapping of our error tree to them. Pure."""

from __future__ import annotations

from enum import IntEnum

from sds_registry.errors import (
    Conflict,
    Forbidden,
    InvalidIdentifier,
    NotFound,
    PreconditionRequired,
    RegistryError,
    Unauthorized,
    Unavailable,
)
from sds_registry.ldap.ast import Result


class ResultCode(IntEnum):
    SUCCESS = 0
    OPERATIONS_ERROR = 1
    PROTOCOL_ERROR = 2
    TIME_LIMIT_EXCEEDED = 3
    SIZE_LIMIT_EXCEEDED = 4
    COMPARE_FALSE = 5
    COMPARE_TRUE = 6
    AUTH_METHOD_NOT_SUPPORTED = 7
    STRONGER_AUTH_REQUIRED = 8
    REFERRAL = 10
    ADMIN_LIMIT_EXCEEDED = 11
    UNAVAILABLE_CRITICAL_EXTENSION = 12
    CONFIDENTIALITY_REQUIRED = 13
    SASL_BIND_IN_PROGRESS = 14
    NO_SUCH_ATTRIBUTE = 16
    UNDEFINED_ATTRIBUTE_TYPE = 17
    INAPPROPRIATE_MATCHING = 18
    CONSTRAINT_VIOLATION = 19
    ATTRIBUTE_OR_VALUE_EXISTS = 20
    INVALID_ATTRIBUTE_SYNTAX = 21
    NO_SUCH_OBJECT = 32
    ALIAS_PROBLEM = 33
    INVALID_DN_SYNTAX = 34
    ALIAS_DEREFERENCING_PROBLEM = 36
    INAPPROPRIATE_AUTHENTICATION = 48
    INVALID_CREDENTIALS = 49
    INSUFFICIENT_ACCESS_RIGHTS = 50
    BUSY = 51
    UNAVAILABLE = 52
    UNWILLING_TO_PERFORM = 53
    LOOP_DETECT = 54
    NAMING_VIOLATION = 64
    OBJECT_CLASS_VIOLATION = 65
    NOT_ALLOWED_ON_NON_LEAF = 66
    NOT_ALLOWED_ON_RDN = 67
    ENTRY_ALREADY_EXISTS = 68
    OBJECT_CLASS_MODS_PROHIBITED = 69
    AFFECTS_MULTIPLE_DSAS = 71
    OTHER = 80
    CANCELED = 118
    NO_SUCH_OPERATION = 119


#: Diagnostic for every write operation: LDAP is a read facade; the registry is written through /api.
READ_ONLY_MESSAGE = "this directory is read-only over LDAP: register and change records through the /api JSON registry"

# Most specific class first: the first isinstance match wins.
_ERROR_CODES: tuple[tuple[type[RegistryError], ResultCode], ...] = (
    (Unavailable, ResultCode.UNAVAILABLE),
    (NotFound, ResultCode.NO_SUCH_OBJECT),
    (InvalidIdentifier, ResultCode.INVALID_DN_SYNTAX),
    (Conflict, ResultCode.UNWILLING_TO_PERFORM),
    (PreconditionRequired, ResultCode.UNWILLING_TO_PERFORM),
    (Forbidden, ResultCode.INSUFFICIENT_ACCESS_RIGHTS),
    (Unauthorized, ResultCode.INAPPROPRIATE_AUTHENTICATION),
)


def result_for_error(error: BaseException) -> Result:
    """The LDAPResult for an exception raised while answering: registry errors by the table, anything else 80."""
    if isinstance(error, RegistryError):
        for cls, code in _ERROR_CODES:
            if isinstance(error, cls):
                return Result(int(code), "", str(error))
        return Result(int(ResultCode.UNWILLING_TO_PERFORM), "", str(error))
    return Result(int(ResultCode.OTHER), "", "internal server error")
