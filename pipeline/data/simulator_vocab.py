"""The simulator's vocabulary: products per season, message bodies per intent, ambiguous phrasings,
names, places and the small tables that make messages read like a real shop's support inbox.

Data only (no logic); kept compact, so ruff's formatter leaves it as written.
"""

from __future__ import annotations

# fmt: off
PRODUCTS: dict[str, tuple[str, ...]] = {
    "evergreen": ("phone case", "water bottle", "desk lamp", "yoga mat", "bluetooth speaker", "coffee maker",
                  "bath towels", "notebook", "wireless mouse", "face cream", "running shoes", "t-shirt", "jeans",
                  "headphones", "bed sheets", "knife set", "phone charger", "socks", "wallet", "shampoo"),
    "winter": ("winter coat", "parka", "wool scarf", "snow boots", "thermal gloves", "beanie", "down jacket",
               "thermal leggings", "space heater", "electric blanket", "fleece hoodie", "ski goggles",
               "hot water bottle", "flannel pajamas", "ear muffs", "snow shovel", "humidifier", "wool socks"),
    "spring": ("rain jacket", "umbrella", "garden hose", "flower seeds", "trench coat", "rain boots",
               "pruning shears", "patio chair", "bike helmet", "windbreaker", "planter pots", "lawn mower",
               "picnic blanket", "allergy air purifier", "gardening gloves", "easter basket", "kite", "bird feeder"),
    "summer": ("swimsuit", "bikini", "sandals", "flip flops", "beach towel", "sunglasses", "desk fan", "sun hat",
               "cooler bag", "inflatable pool", "linen shorts", "sunscreen", "tank top", "air conditioner",
               "camping tent", "snorkel set", "beach umbrella", "ice cream maker"),
    "autumn": ("backpack", "laptop", "pencil case", "wool sweater", "desk chair", "graphing calculator",
               "lunch box", "halloween costume", "hiking boots", "flannel shirt", "tablet", "printer",
               "leather jacket", "scented candle", "school shoes", "textbook", "monitor", "cardigan"),
    "holiday": ("toy train", "lego set", "board game", "smart watch", "gaming console", "drone", "teddy bear",
                "advent calendar", "christmas lights", "gift basket", "kids tablet", "perfume set", "video game",
                "wireless earbuds", "christmas sweater", "doll house", "robot vacuum", "espresso machine"),
}

# Season phrasing: context sentences added to messages of any intent
_CONTEXT: dict[str, tuple[str, ...]] = {
    "winter": ("It's freezing here and I really need it.", "We got snowed in this week.",
               "I need it before our ski trip.", "It was a christmas present.", "I got it as a gift over the holidays.",
               "Happy new year by the way.", "The cold snap is brutal.", "My new year's resolution depends on it."),
    "spring": ("It's for the garden this weekend.", "I'm doing some spring cleaning.", "It's a mother's day present.",
               "We have an easter trip coming up.", "It has been raining all week.", "Allergy season is killing me.",
               "I need it before the spring break."),
    "summer": ("I need it before my vacation.", "We leave for the beach on {weekday}.", "There's a heatwave here.",
               "It's for summer camp.", "We're going camping next week.", "It's for a pool party.",
               "I want it for the 4th of july."),
    "autumn": ("School starts next week.", "My kid needs it for the semester.", "It's for a halloween party.",
               "I need it before thanksgiving.", "It's back to school shopping for us.", "College move-in is soon.",
               "Fall hiking season is here."),
    "holiday": ("It's a christmas gift.", "I need it before christmas.", "I bought it in the black friday sale.",
                "It was a cyber monday deal.", "It's for the holidays.", "It's a hanukkah present for my son.",
                "It's a secret santa gift.", "I'm running out of time before the holidays."),
}

# Body templates per intent. Slots: {product} {order_ref} {when} {days} {amount} {weekday} {carrier} {size} {color}
_BODIES: dict[str, tuple[str, ...]] = {
    "order_status": (
        "Where is {order_ref}?", "Can you tell me the status of {order_ref}?", "Has {order_ref} shipped yet?",
        "I ordered a {product} {when} and haven't heard anything since.",
        "Could you check whether {order_ref} has been processed?", "Is my {product} on its way?",
        "I placed {order_ref} {when}, when will it ship?", "What's the current status of my {product} order?",
        "The website still says processing for {order_ref}. Is that normal?",
        "Did {order_ref} go through? I never got a confirmation email.",
        "When will the {product} be dispatched?", "Can I get a tracking number for {order_ref}?",
        "I'd like an update on {order_ref} please.", "Has the warehouse packed my {product} yet?",
        "Has the delivery for {order_ref} been scheduled?", "Is {order_ref} still coming or was it cancelled?",
        "My account shows {order_ref} as pending. What does that mean?",
        "Just checking in on the {product} I ordered {when}.",
    ),
    "shipping_delay": (
        "My package is late. It was supposed to arrive {when}.", "{order_ref} is {days} days late.",
        "The tracking for my {product} hasn't updated in {days} days.",
        "{carrier} says delivery exception and my {product} is stuck.",
        "Delivery was promised for {weekday} but the {product} still hasn't arrived.",
        "Why is the shipment of {order_ref} taking so long?", "My parcel has been in transit for {days} days.",
        "The courier keeps postponing the delivery of {order_ref}.",
        "Tracking says out for delivery since {weekday}, nothing came.",
        "The estimated delivery date for my {product} keeps moving.",
        "My {product} is stuck at the {carrier} depot.", "The delivery is delayed again, this is the third time.",
        "It's been {days} days past the delivery date for {order_ref}.",
        "I paid for express shipping and the {product} is still not here.",
        "What's the status? My {product} should have been delivered {when}.",
    ),
    "refund_request": (
        "I want a refund for the {product}.", "I returned the {product} {when} and still haven't got my money back.",
        "Please refund {amount} for {order_ref}.", "When will I receive my refund for {order_ref}?",
        "I was promised a refund of {amount} but nothing has arrived.",
        "Can I get my money back? The {product} was not as described.",
        "The refund for my {product} has not shown up on my statement.",
        "You cancelled {order_ref} but I haven't been refunded.",
        "How long does a refund take to process?", "Please reimburse the {amount} for the missing {product}.",
        "The return was received {when}, where is the refund?",
        "I'd like a full refund, the {product} broke after a day.",
        "Refund the shipping fee please, the {product} arrived late.",
        "I need the {amount} refunded to my original payment method.",
        "I sent it back with the return label, now I want the refund.",
    ),
    "return_item": (
        "How do I return the {product}?", "I'd like to return the {product}, it's the wrong {size}.",
        "Can I send back the {product}? It doesn't fit.", "Please send me a return label for {order_ref}.",
        "I want to exchange the {product} for a {size}.", "What is your return policy for a {product}?",
        "The {product} came in {color} instead of the color I picked, I'd like to return it.",
        "Is it too late to return the {product} I bought {when}?",
        "Where do I drop off a return for {order_ref}?", "Can I return just one item from {order_ref}?",
        "I'd like to swap the {product} for a different {color}.", "The {product} doesn't fit, can I exchange it?",
        "Do I need the original box to return the {product}?", "I want to send the {product} back for store credit.",
        "I don't want a refund, just a replacement {product}.",
    ),
    "payment_problem": (
        "My card was declined when I tried to buy the {product}.", "I was charged twice for {order_ref}.",
        "The checkout keeps failing at the payment step.", "Why was I charged {amount} when the total was lower?",
        "PayPal says the payment went through but {order_ref} shows unpaid.",
        "I see a pending charge of {amount} but no order.",
        "My payment for the {product} failed but the money left my account.",
        "Apple Pay doesn't work on your checkout page.", "I got an error 'payment could not be authorized'.",
        "There is a charge of {amount} on my statement I don't recognize.",
        "The installment plan option disappeared at checkout.", "My bank blocked the transaction for {order_ref}.",
        "I was billed {amount} for shipping that should be free.",
        "The invoice for {order_ref} shows the wrong amount.",
        "I paid part with a gift card and my credit card was charged the full amount.",
    ),
    "account_access": (
        "I can't log in to my account.", "The password reset email never arrives.", "My account is locked.",
        "I forgot my password and the reset link has expired.", "Someone changed my account email without asking me.",
        "I keep getting 'invalid credentials' even with the right password.",
        "The two-factor code never shows up on my phone.", "How do I delete my account?",
        "I can't sign in after the app update.", "My account was suspended and I don't know why.",
        "I want to change the email address on my account.", "The login page keeps reloading.",
        "I think my account was hacked, there are orders I didn't place.",
        "I made a second account by mistake, can you merge them?",
    ),
    "product_question": (
        "Is the {product} available in {color}?", "Does the {product} come in {size}?",
        "When will the {product} be back in stock?", "What material is the {product} made of?",
        "Is the {product} machine washable?", "Does the {product} come with a warranty?",
        "What are the dimensions of the {product}?", "Is the {product} suitable for kids?",
        "Can you compare the two {product} models for me?", "Does the {product} ship with batteries?",
        "Is there a bigger version of the {product}?", "Does the {product} run true to size?",
        "How heavy is the {product}?", "Is the {product} made sustainably?",
        "Can I get the {product} engraved?", "Do you sell replacement parts for the {product}?",
    ),
    "gift_card": (
        "My gift card code doesn't work.", "How do I check my gift card balance?",
        "I want to buy a gift card for a friend.", "The gift card says it has already been redeemed.",
        "Can I use two gift cards on one order?", "My e-gift card email never arrived.",
        "Does the gift card expire?", "The gift card balance is wrong, it should be {amount}.",
        "Can I get a gift card refunded to my card?", "How do I add a gift card to my account?",
        "I'd like to send a digital gift card worth {amount}.", "The gift card only covered part of {order_ref}.",
        "Can I reload my gift card?", "Can a gift card be used for the {product}?",
        "The payment with my gift card failed at checkout.",
    ),
    "price_match": (
        "Do you price match? I saw the {product} cheaper elsewhere.",
        "The {product} is {amount} less at another store, can you match it?",
        "I bought the {product} {when} and now it's on sale, can I get the difference?",
        "Another retailer has the {product} for {amount}, will you match the price?",
        "Can you honor the black friday price for the {product}?",
        "The price dropped right after {order_ref}, can you adjust it?",
        "Is there a price guarantee on the {product}?",
        "Your competitor's cyber monday deal beats yours, can you match it?",
        "I paid full price for the {product} and it's discounted today.",
        "Can I get a price adjustment on {order_ref}?",
    ),
}

# Short forms, used by the mobile segment about half the time
_SHORT: dict[str, tuple[str, ...]] = {
    "order_status": ("where is my order", "order status?", "has it shipped", "where's my {product}",
                     "any update on {order_ref}", "tracking number pls", "status of {order_ref}?"),
    "shipping_delay": ("package late", "still not delivered", "{product} delivery late again",
                       "tracking stuck for {days} days", "where's my parcel, it's late", "delivery delayed?!"),
    "refund_request": ("refund pls", "where is my refund", "want my money back", "refund for {order_ref}?",
                       "still no refund for the {product}", "refund {amount}"),
    "return_item": ("how to return", "need a return label", "return {product}", "wrong size, want to exchange",
                    "can i send it back", "exchange {product}"),
    "payment_problem": ("card declined", "charged twice!!", "payment failed", "checkout broken",
                        "payment error on {order_ref}", "why charged {amount}"),
    "account_access": ("cant login", "password reset not working", "account locked", "locked out",
                       "no 2fa code", "cant sign in"),
    "product_question": ("{product} in {color}?", "{product} in stock?", "does {product} come in {size}",
                         "{product} waterproof?", "{product} size guide?", "is the {product} any good"),
    "gift_card": ("gift card not working", "gift card balance?", "buy gift card", "gift card code invalid",
                  "egift card never came", "gift card expired?"),
    "price_match": ("price match?", "{product} cheaper elsewhere", "match price pls",
                    "price dropped, want difference", "black friday price?"),
}

# Season-specific phrasing per intent (on top of the general bodies)
_SEASON_BODIES: dict[str, dict[str, tuple[str, ...]]] = {
    "winter": {
        "return_item": ("I got a {product} as a christmas gift and it doesn't fit, how do I exchange it?",
                        "Can I return a holiday gift without a receipt?",
                        "What's the extended return window for holiday purchases?",
                        "Unwanted gift: a {product}. Can I swap it for something else?"),
        "refund_request": ("I returned a christmas present {when}, where is the refund?",
                           "The {product} I got for the holidays was broken, I want the money back.",
                           "Refund the gift I returned to the gift giver's card please."),
        "gift_card": ("How do I redeem the gift card I got for christmas?",
                      "I got a gift card over the holidays and the balance shows zero.",
                      "Can I combine my holiday gift cards on one order?"),
        "product_question": ("Is the {product} warm enough for minus 20 degrees?", "Is the {product} windproof?",
                             "Does the {product} have a thermal lining?"),
        "shipping_delay": ("The snow storm delayed my {product}, any news?",
                           "Is the winter weather delaying {order_ref}?"),
    },
    "spring": {
        "product_question": ("Is the {product} waterproof?", "Can the {product} stay outside in the rain?",
                             "Is the {product} ok for a small balcony garden?"),
        "order_status": ("Will the {product} arrive before easter?", "Did {order_ref} for mother's day ship?"),
        "return_item": ("The {product} leaks in the rain, I'd like to return it.",
                        "The planting season is over for me, can I still return the {product}?"),
        "shipping_delay": ("My garden order is late and the planting weekend is here.",),
    },
    "summer": {
        "product_question": ("What SPF does the {product} have?", "Is the {product} UV protective?",
                             "Is the {product} chlorine resistant?", "How loud is the {product} on full power?"),
        "shipping_delay": ("I need the {product} before my vacation and it's late.",
                           "We leave for the beach {weekday} and the {product} hasn't come."),
        "return_item": ("The {product} ripped on the first beach day, can I return it?",
                        "Swimwear return: is it allowed if the hygiene liner is still on?"),
        "order_status": ("Will the {product} ship before the 4th of july?",),
    },
    "autumn": {
        "product_question": ("Is there a student discount on the {product}?",
                             "Does the {product} fit a 15 inch laptop?",
                             "How much RAM does the {product} have?", "Is the {product} good for college?"),
        "order_status": ("Will the {product} arrive before school starts?",
                         "Has {order_ref} with the school supplies shipped?"),
        "payment_problem": ("The student discount code made the payment fail.",
                            "My card was declined buying school supplies."),
        "account_access": ("I can't log in to the student account to verify my discount.",),
    },
    "holiday": {
        "shipping_delay": ("Will my {product} arrive before christmas? The tracking is stuck.",
                           "The holiday delivery guarantee said {weekday}, still nothing.",
                           "My christmas order is late, the {product} is a present!",
                           "{carrier} is so backed up with holiday parcels, {order_ref} is stuck."),
        "order_status": ("Did {order_ref} from the black friday sale go through?",
                         "Has the {product} for christmas shipped yet?", "Is my cyber monday order confirmed?"),
        "gift_card": ("Can I send an e-gift card for christmas?", "I'm buying gift cards for the team holiday party.",
                      "Does the holiday gift card bonus promo still apply?",
                      "Can I schedule a gift card email for christmas morning?"),
        "payment_problem": ("My card was declined during the black friday sale.",
                            "Checkout crashed during the cyber monday rush and I was charged {amount}."),
        "product_question": ("Can you gift wrap the {product}?", "Is the {product} a good gift for a 10 year old?",
                             "Does the {product} come in a gift box?"),
        "return_item": ("Can the recipient of a gift return the {product}?",),
    },
}

# Messages that honestly fit more than one intent: (template, {label: weight})
_AMBIGUOUS: tuple[tuple[str, dict[str, float]], ...] = (
    ("I have a problem with {order_ref}.", dict(order_status=4, shipping_delay=3, payment_problem=2, return_item=1)),
    ("Question about {order_ref}.", dict(order_status=5, product_question=2, refund_request=2, shipping_delay=1)),
    ("I want my money back for the {product}.", dict(refund_request=7, return_item=3)),
    ("The {product} arrived broken, what now?", dict(return_item=5, refund_request=5)),
    ("My card didn't work.", dict(payment_problem=7, gift_card=3)),
    ("Can you check on {order_ref}? It's been {days} days.", dict(order_status=5, shipping_delay=5)),
    ("I can't pay with my gift card.", dict(gift_card=5, payment_problem=5)),
    ("I saw the {product} cheaper, can I get the difference back?", dict(price_match=7, refund_request=3)),
    ("I can't log in to check {order_ref}.", dict(account_access=6, order_status=4)),
    ("Nothing has happened with {order_ref} since {weekday}.",
     dict(order_status=5, shipping_delay=4, refund_request=1)),
    ("The {product} is not what I expected.", dict(return_item=5, refund_request=3, product_question=2)),
    ("I was charged but the gift card wasn't applied.", dict(payment_problem=5, gift_card=5)),
    ("I sent the {product} back {when}.", dict(return_item=5, refund_request=5)),
    ("What's going on with my delivery?", dict(shipping_delay=5, order_status=5)),
    ("Where is my {product}? I ordered it {when}.", dict(order_status=6, shipping_delay=4)),
    ("The payment for {order_ref} didn't go through.", dict(payment_problem=8, order_status=2)),
    ("My balance looks wrong.", dict(gift_card=5, payment_problem=3, account_access=2)),
    ("Is the {product} going to be on sale?", dict(price_match=5, product_question=5)),
    ("Can I cancel {order_ref}?", dict(refund_request=4, order_status=4, return_item=2)),
    ("I need help with my account and {order_ref}.", dict(account_access=5, order_status=5)),
)
# Neighbouring intents an agent may pick instead of the right one
_CONFUSABLE = {
    "order_status": ("shipping_delay", "product_question"), "shipping_delay": ("order_status",),
    "refund_request": ("return_item", "payment_problem"), "return_item": ("refund_request",),
    "payment_problem": ("gift_card", "refund_request"), "gift_card": ("payment_problem",),
    "account_access": ("payment_problem", "order_status"), "product_question": ("order_status", "return_item"),
    "price_match": ("refund_request",),
}

_BUSINESS_TOPIC = {
    "order_status": "the status of our purchase order", "shipping_delay": "a delayed delivery",
    "refund_request": "a refund owed to our account", "return_item": "returning part of a bulk order",
    "payment_problem": "an invoice payment issue", "account_access": "access to our business account",
    "product_question": "a product specification", "gift_card": "corporate gift cards",
    "price_match": "a price adjustment",
}
_GREETINGS = {
    "mobile": ("hi", "hey", "hello", "yo"),
    "web": ("Hi,", "Hello,", "Hey there,", "Good morning,", "Hi team,", "Hello support,", "Hi there!", "Good evening,"),
    "business": ("Dear Customer Service,", "Dear Support Team,", "Good afternoon,", "To whom it may concern,",
                 "Hello,", "Dear Sir or Madam,"),
}
_CLOSINGS = {
    "mobile": ("thx", "thanks", "ty", "pls help", "asap pls"),
    "web": ("Thanks!", "Thank you.", "Thanks in advance.", "Cheers.", "Appreciate it.", "Thanks for your help.",
            "Let me know.", "Have a nice day."),
    "business": ("Kind regards, {name}", "Best regards, {name}, {company}", "Sincerely, {name}",
                 "Thank you for your prompt attention to this matter.",
                 "We look forward to your reply. {name}, {company}",
                 "Regards, {name} ({company} purchasing)"),
}
_BUSINESS_OPENERS = ("I am writing on behalf of {company} regarding {topic}.", "We are contacting you about {topic}.",
                     "This concerns {topic} for {company}.", "I am reaching out regarding {topic}.")
_BUSINESS_NEUTRAL = ("our recent order", "our account with you", "an open ticket")
_BUSINESS_ASKS = ("Please advise at your earliest convenience.", "We would appreciate a written confirmation.",
                  "Kindly confirm the next steps.", "Please treat this as urgent.",
                  "A reply by end of week would be appreciated.")
_WEB_ASKS = ("Can you help?", "What should I do?", "Please let me know.", "Any help is appreciated.",
             "This is frustrating.",
             "I've been a customer for years.", "Thanks for looking into it.", "I'm really disappointed.")

_FIRST = ("john", "maria", "li", "ahmed", "sofia", "james", "olga", "kenji", "amara", "lucas", "emma", "noah",
          "priya", "diego", "hana", "tom", "fatima", "ben", "chloe", "ivan")
_LAST = ("smith", "garcia", "chen", "khan", "rossi", "brown", "novak", "tanaka", "okafor", "silva", "miller",
         "wilson", "patel", "lopez", "kim", "meyer", "haddad", "jones", "dubois", "petrov")
_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "proton.me", "example.org", "mail.co.uk", "web.de")
_COMPANIES = ("Acme Corp", "Globex Ltd", "Initech", "Umbrella Supplies", "Northwind Traders", "Contoso GmbH",
              "Stark Logistics", "Wayne Hospitality", "Blue Harbor Cafe", "Pinecrest Dental")
_CARRIERS = ("UPS", "FedEx", "USPS", "DHL", "the courier", "the post office", "Royal Mail", "the delivery company")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_SIZES = ("size 8", "size 10", "size 12", "size S", "size M", "size L", "XL", "a smaller size", "a bigger size",
          "size 42")
_COLORS = ("black", "navy", "red", "green", "white", "grey", "beige", "pink", "olive", "burgundy")
_GENERIC_ORDERS = ("my order", "my last order", "my recent order", "the order I placed", "my purchase", "my package")
_NUMBER_WORDS = ("two", "three", "four", "five", "six", "seven", "ten", "twelve")

_ABBREVIATIONS = (
    (r"\bplease\b", "pls"), (r"\byou\b", "u"), (r"\byour\b", "ur"), (r"\bthanks\b", "thx"), (r"\bare\b", "r"),
    (r"\bbecause\b", "bc"), (r"\bI'm\b", "im"), (r"\bdon't\b", "dont"), (r"\bcan't\b", "cant"),
    (r"\bhaven't\b", "havent"),
    (r"\bdoesn't\b", "doesnt"), (r"\bI\b", "i"),
)
_BUSINESS_WE = ((r"\bI'm\b", "we're"), (r"\bI've\b", "we've"), (r"\bI'd\b", "we'd"), (r"\bI\b", "we"),
                (r"\bmy\b", "our"),
                (r"\bMy\b", "Our"))
_KEYBOARD_NEIGHBORS = {
    row[i]: row[i + 1] if i + 1 < len(row) else row[i - 1]
    for row in ("qwertyuiop", "asdfghjkl", "zxcvbnm")
    for i in range(len(row))
}
# fmt: on
