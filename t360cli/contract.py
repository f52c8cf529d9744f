"""Track360 facts from the API guide (Forex edition), as data.

This is the only module the sandbox shares with the client.
"""

from __future__ import annotations

KINDS = ("customers", "activities")

ENDPOINTS = {
    "customers": "/tracking/events/customers",
    "activities": "/tracking/events/activities",
}

# The id field is spelled differently on the two endpoints (guide sections 6 and 7).
ID_FIELD = {"customers": "customerId", "activities": "customerid"}

REQUIRED = {
    "customers": ("customerId",),
    "activities": ("customerid", "eventname"),
}

# Fields the guide names, in the guide's order, with their type.
FIELDS = {
    "customers": {
        "customerId": "string",
        "regtime": "datetime",
        "country": "string",
        "firstName": "string",
        "lastName": "string",
        "tracking_data": "string",
    },
    "activities": {
        "eventname": "string",
        "customerid": "string",
        "eventid": "string",
        "createtime": "datetime",
        "Value": "decimal",
        "Currency": "string",
    },
}

# The guide's KPI fields of an activity (besides Value), section 10.
KPI_FIELDS = ("Lots", "Volume", "Rebate", "Trades")

# Every field the guide names per kind: a target close to one of these is a slip (SPEC 12).
GUIDE_FIELDS = {
    "customers": tuple(FIELDS["customers"]),
    "activities": tuple(FIELDS["activities"]) + KPI_FIELDS,
}

# Fields whose type t360 enforces even when the mapping names none.
DEFAULT_TYPES = {
    "customers": {"regtime": "datetime"},
    "activities": {"createtime": "datetime", "Value": "decimal"},
}

TRACKING_DATA_MAX = 50

# Column-name synonyms for `t360 mapping init`, matched after folding case,
# spaces, underscores, dashes and dots away.
SYNONYMS = {
    "customers": {
        "customerId": [
            "customerid",
            "customer",
            "accountid",
            "account",
            "clientid",
            "client",
            "login",
            "userid",
            "traderid",
            "accountno",
            "accountnumber",
            "id",
        ],
        "regtime": [
            "regtime",
            "registrationdate",
            "registrationtime",
            "registered",
            "registeredat",
            "signupdate",
            "createdat",
            "created",
            "regdate",
        ],
        "country": ["country", "countrycode", "countryiso", "nationality"],
        "firstName": ["firstname", "first", "givenname", "name"],
        "lastName": ["lastname", "last", "surname", "familyname"],
        "tracking_data": [
            "trackingdata",
            "tracking",
            "tracker",
            "campaign",
            "tag",
            "affiliatetag",
            "clickid",
            "subid",
            "btag",
        ],
    },
    "activities": {
        "customerid": [
            "customerid",
            "customer",
            "accountid",
            "account",
            "clientid",
            "client",
            "login",
            "userid",
            "traderid",
            "accountno",
            "accountnumber",
        ],
        "eventname": ["eventname", "event", "type", "transactiontype", "kpi", "eventtype"],
        "eventid": [
            "eventid",
            "transactionid",
            "txnid",
            "txid",
            "ticket",
            "dealid",
            "orderid",
            "reference",
            "ref",
            "id",
        ],
        "createtime": [
            "createtime",
            "date",
            "time",
            "datetime",
            "timestamp",
            "transactiondate",
            "tradedate",
            "createdat",
            "created",
            "closetime",
            "opentime",
        ],
        "Value": ["value", "amount", "sum", "total"],
        "Currency": ["currency", "ccy", "cur", "curr", "currencycode"],
    },
}

SANDBOX_STATS_PATH = "/sandbox/stats"


# `t360 fields` (SPEC 12): the guide's field reference tables (section 09), as data.
# (name, type, required, limits and notes)
FIELD_REFERENCE = {
    "customers": (
        ("customerId", "string", "required", "unique per brand; sending it again updates the customer"),
        ("regtime", "datetime", "", "sent as YYYY-MM-DD HH:mm"),
        ("country", "string", "", "an ISO code such as US (type: country normalises names)"),
        ("firstName", "string", "", ""),
        ("lastName", "string", "", ""),
        ("tracking_data", "string", "", f"at most {TRACKING_DATA_MAX} characters; needed for attribution"),
    ),
    "activities": (
        ("customerid", "string", "required", "must match a customer sent before"),
        ("eventname", "string", "required", "the KPI: Deposit, Withdrawal, Lots, DailyStats..."),
        ("eventid", "string", "", "unique per event: de-duplication and reconciliation"),
        ("createtime", "datetime", "", "sent as YYYY-MM-DD HH:mm, or YYYY-MM-DD for daily stats"),
        ("Value", "decimal", "", 'the amount of a single-KPI event, sent as text ("1000.00")'),
        ("Currency", "string", "", "an ISO 4217 code such as USD"),
        ("Lots", "decimal", "", "a KPI field (daily stats)"),
        ("Volume", "decimal", "", "a KPI field (daily stats)"),
        ("Rebate", "decimal", "", "a KPI field (daily stats)"),
        ("Trades", "decimal", "", "a KPI field (daily stats): the number of trades"),
    ),
}
