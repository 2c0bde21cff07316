"""The registration forms (Flask-WTF: CSRF token per session, signed with SDS_WEB_SECRET_KEY). They only carry
fields: every rule is the services' (services/registration.py), reported beside the field it names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, SelectField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired
from wtforms.widgets import CheckboxInput, ListWidget

from sds_registry.domain.interactions import CATALOGUE, PROVIDER_DEFAULT
from sds_registry.errors import Issue


class CheckboxesField(SelectMultipleField):  # type: ignore[misc]
    """Several choices as a list of checkboxes (keyboard-usable, no script)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def pre_validate(self, form: Any) -> None:
        """Choices are checked by the service (it names the interaction it does not know), not here."""


def _interaction_choices() -> list[SelectChoice]:
    return [SelectChoice(i.id, f"{i.description} ({i.id})") for i in CATALOGUE if i.current]


class TokenForm(FlaskForm):  # type: ignore[misc]
    token = PasswordField("API token", render_kw={"autocomplete": "off"}, validators=[InputRequired(
        message="paste the token that 'sds token create' printed")])


class SignOutForm(FlaskForm):  # type: ignore[misc]
    pass


class ProviderForm(FlaskForm):  # type: ignore[misc]
    ods_code = StringField("ODS code of the practice")
    fqdn = StringField("FQDN of the provider's FHIR server")
    fhir_version = SelectField("FHIR version", choices=[SelectChoice(v, v) for v in ("STU3", "R4", "DSTU2")],
                               default="STU3")
    gpc_major_version = StringField("GP Connect major version", default="1")
    interactions = CheckboxesField("Interactions it serves", choices=_interaction_choices(),
                                   default=list(PROVIDER_DEFAULT))
    product_name = StringField("Product name")
    product_version = StringField("Product version")
    manufacturer_org = StringField("Supplier's ODS code")
    asid = StringField("ASID (empty: a new one)")
    party_key = StringField("Party key (empty: a new one)")
    replace = BooleanField("Replace the practice's existing provider for these interactions")

    def registration(self) -> dict[str, Any]:
        """The /api/providers body these fields make (empty fields left out, as a client would)."""
        return _body(self, ("ods_code", "fqdn", "fhir_version", "gpc_major_version", "product_name",
                            "product_version", "manufacturer_org", "asid", "party_key"),
                     interactions=self.interactions.data or [], replace=bool(self.replace.data))


class ConsumerForm(FlaskForm):  # type: ignore[misc]
    ods_code = StringField("ODS code of the consumer organisation")
    product_name = StringField("Product name")
    product_version = StringField("Product version")
    manufacturer_org = StringField("Supplier's ODS code")
    fqdn = StringField("FQDN of its client certificate (CN)")
    interactions = CheckboxesField("Interactions it may send", choices=_interaction_choices())
    asid = StringField("ASID (empty: a new one)")
    party_key = StringField("Party key (empty: a new one)")

    def registration(self) -> dict[str, Any]:
        """The /api/consumers body these fields make."""
        return _body(self, ("ods_code", "product_name", "product_version", "manufacturer_org", "fqdn", "asid",
                            "party_key"), interactions=self.interactions.data or [])


def _body(form: FlaskForm, names: tuple[str, ...], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name in names:
        value = (form[name].data or "").strip()
        if value:
            body[name] = value
    body.update({k: v for k, v in extra.items() if v not in ([], False)})
    return body


#: Where a service's issue field lands on a form when its name is not a field's (registration.py's names).
_FIELD_OF = {"service_root": "fqdn", "mhs": "fqdn", "endpoints": "fqdn", "ods": "ods_code"}


#: The service root URL's rules about the parts a form asks for separately (the service names the URL, "fqdn").
_FIELD_OF_RULE = {"gpc-major-version": "gpc_major_version", "fhir-version-name": "fhir_version",
                  "fhir-version-uppercase": "fhir_version"}


def place_issues(form: FlaskForm, issues: list[Issue], extra: Mapping[str, str] = _FIELD_OF) -> list[str]:
    """Put each broken rule beside its field (``interactions[2]`` -> interactions, ``mhs[0].endpoints[0]`` ->
    fqdn, the URL's major version rule -> gpc_major_version); return the messages no field holds, for the top."""
    left: list[str] = []
    for issue in issues:
        head = issue.field.split(".", 1)[0].split("[", 1)[0]
        name = head if head in form else extra.get(head, "")
        if _FIELD_OF_RULE.get(issue.rule, "") in form:
            name = _FIELD_OF_RULE[issue.rule]
        if name and name in form:
            form[name].errors = [*form[name].errors, f"{issue.message} (rule: {issue.rule})"]  # type: ignore[list-item]
        else:
            left.append(f"{issue.field}: {issue.message} (rule: {issue.rule})")
    return left
