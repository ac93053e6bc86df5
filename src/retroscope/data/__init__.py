"""retroscope.data"""
